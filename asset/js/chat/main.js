/* imchat web client: the chat page. Friends, groups and me; conversations with
 * history; sending text, emoji, images and voice notes over the /chat WebSocket with
 * acknowledgements; reconnecting with backoff and catching up with `since`.
 *
 * The page's entry module: it wires the controls to the other modules and starts the
 * connection. util.js (helpers), state.js (what the page knows), conn.js (the
 * socket), messages.js (in and out), views.js and bubbles.js (drawing), media.js
 * (uploads and voice), session.js (logout and an expired login). */
import {im, t, h, $, CMD, MEDIA, toast} from './util.js';
import {state, me, token, signedIn, setMe} from './state.js';
import * as conn from './conn.js';
import {onFrame, send, markRead, loadConversations, typing} from './messages.js';
import {showTab, loadFriends, loadGroups, renderMessages, titleOf, closeConversation,
        showMembers, loadHistory, addFriend, setBanner, showStatus, showProfile, unfriend,
        leaveGroup, hideMenu, recallFromMenu} from './views.js';
import {updateProfile, changeAvatar, sendImage, startRecording, stopRecording} from './media.js';
import {endSession, fail, logout} from './session.js';
import {installSearch} from './search.js';

const EMOJI = ['😀', '😂', '🤣', '😊', '😍', '😘', '😎', '🤔', '😅', '😭', '😡', '😱',
               '😴', '🥳', '🤗', '🙄', '😇', '🤩', '👍', '👎', '👏', '🙏', '💪', '🤝',
               '👌', '✌️', '❤️', '💔', '🔥', '🎉', '🌹', '☕', '🍺', '🍉', '🎂', '⭐',
               '☀️', '🌙', '💯', '✅'];
const app = $('app');

document.addEventListener('visibilitychange', function () {
  if (!document.hidden && state.open) markRead(state.open);
});

function sendText() {
  let input = $('text-input');
  let text = input.value;
  if (!text.trim()) return;
  send({media: MEDIA.TEXT, content: text});
  input.value = '';
  autosize();
  input.focus();
}

function autosize() {
  let input = $('text-input');
  input.style.height = 'auto';
  input.style.height = Math.min(120, input.scrollHeight) + 'px';
}

function buildEmojiPanel() {
  let panel = $('emoji-panel');
  EMOJI.forEach(function (e) {
    panel.appendChild(h('button', {type: 'button', className: 'emoji', text: e, 'aria-label': e,
                                   onclick: function () {
                                     send({media: MEDIA.EMOJI, content: e});
                                     panel.hidden = true;
                                   }}));
  });
}

function bindForms() {
  document.querySelectorAll('.tabbar .tab').forEach(function (el) {
    el.addEventListener('click', function () { showTab(el.dataset.tab); });
  });
  $('list-action').addEventListener('click', function () {
    let form = state.tab === 'friends' ? $('add-friend-form') : $('group-forms');
    form.hidden = !form.hidden;
    this.setAttribute('aria-expanded', String(!form.hidden));
    let first = form.querySelector('input');
    if (!form.hidden && first) first.focus();
  });
  $('add-friend-form').addEventListener('submit', function (e) {
    e.preventDefault();
    let form = this;
    let value = form.elements.target.value.trim();
    if (!value) return;
    let fields = {};
    fields[form.elements.by.value] = value;
    addFriend(fields).then(function () { form.elements.target.value = ''; });
  });
  $('create-group-form').addEventListener('submit', function (e) {
    e.preventDefault();
    let form = this;
    let name = form.elements.name.value.trim();
    if (!name) return;
    im.api('/contact/createcommunity', {name: name}).then(function (reply) {
      form.elements.name.value = '';
      toast(t('group_created', {name: reply.data.name}));
      loadGroups();
    }, fail);
  });
  $('join-group-form').addEventListener('submit', function (e) {
    e.preventDefault();
    let form = this;
    let id = form.elements.dstid.value.trim();
    if (!id) return;
    im.api('/contact/joincommunity', {dstid: id}).then(function () {
      form.elements.dstid.value = '';
      toast(t('group_joined'));
      loadGroups();
    }, fail);
  });
  $('nickname-form').addEventListener('submit', function (e) {
    e.preventDefault();
    let nickname = this.elements.nickname.value.trim();
    if (!nickname) return;
    updateProfile({nickname: nickname}, t('nickname_saved'));
  });
  $('logout-btn').addEventListener('click', logout);
  $('avatar-input').addEventListener('change', function () {
    changeAvatar(this.files[0]);
    this.value = '';
  });
  $('back-btn').addEventListener('click', closeConversation);
  $('members-btn').addEventListener('click', showMembers);
  $('members-close').addEventListener('click', function () { $('members-panel').hidden = true; });
  $('leave-btn').addEventListener('click', leaveGroup);
  $('profile-btn').addEventListener('click', showProfile);
  $('convo-title').addEventListener('click', function () {
    if (state.open && state.open.cmd === CMD.USER) showProfile();
  });
  $('profile-close').addEventListener('click', function () { $('profile-panel').hidden = true; });
  $('unfriend-btn').addEventListener('click', unfriend);
  $('recall-btn').addEventListener('click', recallFromMenu);
  document.addEventListener('click', function (e) {
    if (!$('msg-menu').contains(e.target)) hideMenu();
  });
  $('messages').addEventListener('scroll', hideMenu, {passive: true});
  $('composer').addEventListener('submit', function (e) { e.preventDefault(); sendText(); });
  $('text-input').addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
  });
  $('text-input').addEventListener('input', function () {
    autosize();
    if (this.value) typing();
  });
  $('emoji-btn').addEventListener('click', function () { $('emoji-panel').hidden = !$('emoji-panel').hidden; });
  $('image-input').addEventListener('change', function () {
    sendImage(this.files[0]);
    this.value = '';
  });
  $('voice-btn').addEventListener('click', startRecording);
  $('rec-stop').addEventListener('click', function () { stopRecording(false); });
  $('rec-cancel').addEventListener('click', function () { stopRecording(true); });
  $('lightbox').addEventListener('click', function () { this.hidden = true; });
  $('history-note').addEventListener('click', function () {
    if (state.open) loadHistory(state.open, true);
  });
  $('messages').addEventListener('scroll', function () {
    if (state.open && this.scrollTop < 40) loadHistory(state.open, true);
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') { $('lightbox').hidden = true; $('emoji-panel').hidden = true; hideMenu(); }
  });
  document.addEventListener('imchat:lang', function () {
    showTab(state.tab);
    if (state.open) { $('convo-title').textContent = titleOf(state.open); renderMessages(false); showStatus(); }
  });
}

function connect() {
  conn.start({
    url: () => {
      const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
      return scheme + '//' + window.location.host + '/chat?id=' + encodeURIComponent(me.id) +
        '&token=' + encodeURIComponent(token) + (state.since ? '&since=' + state.since : '');
    },
    onConnecting: () => setBanner(t('connecting')),
    onOpen: () => {
      setBanner('');
      app.dataset.conn = 'open';
      // Unread counts and read positions as they are now, on every (re)connect.
      loadConversations();
    },
    onFrame: onFrame,
    onClose: () => { app.dataset.conn = 'closed'; },
    onDown: (delay) => setBanner(t('reconnecting', {s: Math.max(1, Math.round(delay / 1000))})),
    onRefused: endSession,
    onReplaced: () => setBanner(t('replaced'))
  });
}

function start() {
  buildEmojiPanel();
  bindForms();
  installSearch();
  showTab('chats');
  loadFriends();
  loadGroups();
  // Check the token before connecting: a stale one goes back to the login page.
  im.api('/user/find', {}, 'GET').then(function (reply) {
    const user = reply.data;
    user.mobile = me.mobile;
    setMe(user);
    connect();
  }, fail);
}

if (!signedIn) window.location.replace('/user/login.shtml');
// Modules run before DOMContentLoaded: let common.js translate the page first.
else document.addEventListener('DOMContentLoaded', start);
