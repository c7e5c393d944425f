/* imchat web client: the chat page. Friends, groups and me; conversations with
 * history; sending text, emoji, images and voice notes over the /chat WebSocket with
 * acknowledgements; reconnecting with backoff and catching up with `since`.
 *
 * The page's entry module: it mounts the views, gives them what the person's actions
 * do, and starts the connection. What the page knows and does: state.js, api.js (HTTP),
 * conn.js (the socket), messages.js, reads.js, presence.js, contacts.js, media.js,
 * session.js, notify.js (notifications). What it draws: shell.js, lists.js (with
 * rows.js), pane.js (with bubbles.js and msgmenu.js), panels.js, composer.js, metab.js,
 * search.js. The first half never
 * calls the second: it announces what changed (events.js) and the views listen; the
 * views reach the first half only through the handlers given here. */
import {t, MEDIA, CMD, toast} from './util.js';
import {on} from './events.js';
import * as api from './api.js';
import {state, me, token, signedIn, conv, convKey, setMe, setTab, setOpen, titleOf, setDraft,
        userOf} from './state.js';
import * as conn from './conn.js';
import {onFrame, send, sendTo, loadHistory, loadAround, recall} from './messages.js';
import * as rich from './rich.js';
import {markRead, loadConversations} from './reads.js';
import {typing} from './presence.js';
import * as contacts from './contacts.js';
import * as requests from './requests.js';
import {changeAvatar, changeGroupIcon, sendImage, startRecording, stopRecording} from './media.js';
import {endSession, logout} from './session.js';
import {mountShell, setBanner, toggleForm} from './shell.js';
import {mountLists} from './lists.js';
import {mountPane} from './pane.js';
import {mountMenu} from './msgmenu.js';
import {mountRichComposer} from './richcomposer.js';
import {showPicker, editDialog, chooseConversation} from './richview.js';
import {mountPanels, confirmFirst} from './panels.js';
import {mountComposer} from './composer.js';
import {mountMe} from './metab.js';
import {mountAnnouncer} from './announce.js';
import {mountRoute} from './route.js';
import {mountRequests} from './requestsview.js';
import {startNotify, connected, readHere} from './notify.js';
import {mountSearch} from './search.js';
import {muteConversation} from './mutes.js';
import {report} from './reports.js';
import {mountMute, askReport, askMuteUntil} from './safetyview.js';
import * as community from './community.js';
import {mountCommunity} from './communityview.js';

const app = document.getElementById('app');

function showTab(tab) {
  setTab(tab);
  if (tab === 'friends') {
    contacts.loadFriends();
    requests.loadRequests();
  }
  if (tab === 'me') requests.loadBlocked();
  if (tab === 'groups') {
    contacts.loadGroups();
    community.loadInvitations();
  }
}

function openConversation(key) {
  const c = conv(key);
  setOpen(c);
  markRead(c);
  readHere(c);
  if (!c.historyLoaded) loadHistory(c, false);
}

// Copy a message's text: the clipboard API where the page may use it, else the old way.
function copy(text) {
  const done = () => toast(t('copied'));
  const fallback = () => {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'visually-hidden';
    document.body.appendChild(area);
    area.select();
    try { document.execCommand('copy'); done(); } finally { area.remove(); }
  };
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).then(done, fallback);
  }
  fallback();
  return Promise.resolve();
}

// Ask first; `act()` runs only on a yes.
function askThen(question, okLabel, act) {
  return confirmFirst(question, okLabel).then((yes) => (yes ? act() : false));
}

// A request sent shows in my list of requests, waiting.
function addFriend(fields) {
  return contacts.addFriend(fields).then((done) => {
    if (done) requests.loadRequests();
    return done;
  });
}

function nameOf(userId) {
  const user = userOf(userId);
  return user.nickname || ('#' + userId);
}

// A message from the composer, with what it answers and whom it mentions.
function sendDrafted(fields) {
  const c = state.open;
  if (!c) return;
  const reply = c.draft && c.draft.reply;
  sendTo(c, Object.assign(fields, rich.draftFields(c, fields.content || '')), reply ? {
    reply: {msgid: reply.msgid, userid: reply.userid, media: reply.media,
            content: (reply.content || '').slice(0, 100), recalled: reply.recalled ? 1 : 0}} : null);
  rich.clearDraft(c);
}

function mountViews() {
  mountShell({
    showTab: showTab,
    addFriend: addFriend,
    createGroup: contacts.createGroup,
    joinGroup: contacts.joinGroup
  });
  mountLists(openConversation, () => {
    showTab('friends');
    toggleForm(true);
  });
  mountPane({
    close: () => setOpen(null),
    loadOlder: (c) => loadHistory(c, true),
    addFriend: (id) => addFriend({dstid: id}),
    react: rich.react
  });
  mountMenu({
    reply: (msg) => rich.replyTo(state.open, msg),
    react: (msg, x, y) => showPicker(x, y, (emoji) => rich.react(msg, emoji)),
    edit: (msg) => editDialog(msg.content || '', (text) => rich.edit(msg, text)),
    forward: (msg) => chooseConversation(rich.forwardTargets(), (c) => sendTo(c, {forward: msg.msgid}, {
      media: msg.media, content: msg.content, url: msg.url, pic: msg.pic, memo: msg.memo,
      amount: msg.amount, forwarded: 1})),
    copy: (msg) => copy(String(msg.content || msg.url || '')),
    recall: recall,
    report: (msg) => askReport(t('report_message')).then((why) => (
      why ? report(Object.assign({msgid: msg.msgid}, why)) : false))
  });
  mountMute({mute: muteConversation});
  mountRichComposer({
    sendFile: (file) => rich.uploadFile(file).then((data) => send({
      media: MEDIA.FILE, url: data.url, content: data.name, amount: data.size}), () => {}),
    cancelReply: rich.clearDraft,
    mention: rich.mention,
    members: (c) => api.loadMembers(c.dstid)
  });
  mountPanels({
    showMembers: contacts.loadMembers,
    addFriend: (id) => addFriend({dstid: id}),
    transfer: (c, user, name) => askThen(t('transfer_confirm', {name: name}), t('transfer'),
                                         () => contacts.transfer(c, user, name)),
    kick: (c, user, name) => askThen(t('kick_confirm', {name: name}), t('kick'),
                                     () => contacts.kick(c, user, name)),
    leave: (c) => askThen(t('leave_confirm', {name: titleOf(c)}), t('leave_group'),
                          () => contacts.leaveGroup(c)),
    unfriend: (c) => askThen(t('unfriend_confirm', {name: titleOf(c)}), t('unfriend'),
                             () => contacts.unfriend(c)),
    setRole: community.setRole,
    muteMember: (c, user, name) => askMuteUntil(t('mute_member_question', {name: name}),
                                                Boolean(Number(user.muteuntil)))
      .then((until) => (until === null ? false : community.muteMember(c, user, name, until))),
    mustTransfer: () => confirmFirst(t('owner_leave'), t('choose_owner')),
    rename: (c, name) => contacts.updateGroup(c, {name: name}, t('group_renamed')),
    changeIcon: changeGroupIcon
  });
  mountCommunity({
    setJoinMode: community.setJoinMode,
    setAnnounce: community.setAnnounce,
    loadJoinRequests: community.loadJoinRequests,
    approve: community.approve,
    reject: (c, userId, name) => askThen(t('reject_confirm', {name: name}), t('decline'),
                                         () => community.reject(c, userId)),
    invite: community.invite,
    showMembers: contacts.loadMembers,
    acceptInvitation: community.acceptInvitation,
    dismissInvitation: community.dismissInvitation
  });
  mountComposer({
    sendText: (text) => sendDrafted({media: MEDIA.TEXT, content: text}),
    sendEmoji: (emoji) => sendDrafted({media: MEDIA.EMOJI, content: emoji}),
    typing: typing,
    sendImage: sendImage,
    startRecording: startRecording,
    stopRecording: stopRecording,
    saveDraft: setDraft
  });
  mountMe({
    saveNickname: (nickname) => contacts.updateProfile({nickname: nickname}, t('nickname_saved')),
    saveBio: (memo) => contacts.updateProfile({memo: memo}, t('bio_saved')),
    changePassword: contacts.changePassword,
    changeAvatar: changeAvatar,
    logout: logout
  });
  mountAnnouncer();
  mountRequests({
    accept: requests.accept,
    decline: (id) => askThen(t('decline_confirm', {name: nameOf(id)}), t('decline'),
                             () => requests.decline(id)),
    block: (id, name) => askThen(t('block_confirm', {name: name}), t('block'),
                                 () => requests.block(id)),
    unblock: (id, name) => askThen(t('unblock_confirm', {name: name}), t('unblock'),
                                   () => requests.unblock(id)),
    report: (id, name) => askReport(t('report_user_title', {name: name})).then((why) => (
      why ? report(Object.assign({dstid: id}, why)) : false))
  }, () => (state.open && state.open.cmd === CMD.USER ? userOf(state.open.dstid) : null));
  mountSearch({
    search: api.search,
    // A search result: its neighbours loaded, then the conversation shown.
    openAt: (key, msgid) => loadAround(conv(key), msgid).then(() => {
      if (state.open !== conv(key)) openConversation(key);
    }),
    fail: api.fail
  });
  on('notice', toast);
  on('session-over', endSession);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.open) {
      markRead(state.open);
      readHere(state.open);
    }
  });
}

function connect() {
  conn.start({
    url: () => {
      const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
      return scheme + '//' + window.location.host + '/chat?id=' + encodeURIComponent(me.id) +
        (state.since ? '&since=' + state.since : '');
    },
    protocols: () => (token ? ['imchat', 'imchat.token.' + token] : ['imchat']),
    onConnecting: () => setBanner(t('connecting')),
    onOpen: () => {
      setBanner('');
      app.dataset.conn = 'open';
      // Unread counts and read positions as they are now, on every (re)connect.
      loadConversations();
      connected();  // tells the server whether this page is shown (cmd 20)
    },
    onFrame: onFrame,
    onClose: () => { app.dataset.conn = 'closed'; },
    onDown: (delay) => setBanner(t('reconnecting', {s: Math.max(1, Math.round(delay / 1000))})),
    onRefused: endSession,
    onReplaced: () => setBanner(t('replaced'))
  });
}

function start() {
  mountViews();
  showTab('chats');
  // The address may name a tab and a conversation (a reload, back, a link).
  mountRoute({showTab: showTab, open: openConversation, close: () => setOpen(null)});
  contacts.loadFriends();
  contacts.loadGroups();
  community.loadInvitations();
  requests.loadRequests();
  requests.loadBlocked();
  // Check the token before connecting: a stale one goes back to the login page.
  api.findMe().then((user) => {
    user.mobile = me.mobile;
    setMe(user);
    connect();
    // A notification clicked opens its conversation here.
    startNotify((target, dstid) => openConversation(convKey(target, dstid)));
  }, api.fail);
}

if (!signedIn) window.location.replace('/user/login.shtml');
// Modules run before DOMContentLoaded: let common.js translate the page first.
else document.addEventListener('DOMContentLoaded', start);
