/* The views of the chat page: the tabs and their lists (Chats first), the Me tab, the
 * open conversation and its messages, a friend's profile and a group's members, and
 * the confirmations. They read the state and redraw; sending and receiving live in
 * messages.js. */
import {im, t, h, $, CMD, avatar, displayName, formatTime, toast} from './util.js';
import {state, me, conv, convKey, userOf, sortedMessages, oldestMsgid, remember, isFriend,
        events} from './state.js';
import {summary, bubble} from './bubbles.js';
import {markRead, canRecall, recall, isTyping, RECALL_SECONDS} from './messages.js';
import {fail} from './session.js';

const HISTORY_PAGE = 30;
const app = $('app');

/* ---------- tabs and lists ---------- */

export function showTab(tab) {
  state.tab = tab;
  app.dataset.tab = tab;
  ['chats', 'friends', 'groups', 'me'].forEach(function (name) {
    $('tab-' + name).hidden = name !== tab;
  });
  document.querySelectorAll('.tabbar .tab').forEach(function (el) {
    el.classList.toggle('active', el.dataset.tab === tab);
    el.setAttribute('aria-current', el.dataset.tab === tab ? 'page' : 'false');
  });
  let title = $('list-title');
  title.setAttribute('data-i18n', 'tab_' + tab);
  title.textContent = t('tab_' + tab);
  $('list-action').hidden = tab === 'me' || tab === 'chats';
  $('list-action').setAttribute('aria-expanded', 'false');
  $('add-friend-form').hidden = true;
  $('group-forms').hidden = true;
  if (tab === 'chats') renderChats();
  if (tab === 'friends') loadFriends();
  if (tab === 'groups') loadGroups();
  if (tab === 'me') renderMe();
}

export function loadFriends() {
  return im.api('/contact/loadfriend', {}, 'GET').then(function (reply) {
    state.friends = reply.rows || [];
    state.friends.forEach(function (u) { state.users[u.id] = u; });
    renderLists();
    showStatus();
    if (!$('profile-panel').hidden) showProfile();
  }, fail);
}

export function loadGroups() {
  return im.api('/contact/loadcommunity', {}, 'GET').then(function (reply) {
    state.groups = reply.rows || [];
    renderLists();
  }, fail);
}

function listItem(key, who, title, subtitle) {
  let c = state.convs[key];
  let last = c && c.last;
  let unread = state.unread[key] || 0;
  let item = h('li', {className: 'list-item' + (state.open && state.open.key === key ? ' active' : ''),
                      dataset: {conv: key}, tabindex: '0', role: 'button'}, [
    avatar(who, who.online ? 'is-online' : ''),
    h('div', {className: 'list-main'}, [
      h('div', {className: 'list-title-row'}, [
        h('span', {className: 'list-name', text: title}),
        h('span', {className: 'list-time', text: last ? formatTime(last.createat) : ''})
      ]),
      h('div', {className: 'list-sub', text: last ? senderPrefix(c, last) + preview(last) : subtitle})
    ]),
    unread ? h('span', {className: 'badge', text: unread > 99 ? '99+' : unread}) : null
  ]);
  item.addEventListener('click', function () { openConversation(key); });
  item.addEventListener('keydown', function (e) { if (e.key === 'Enter') openConversation(key); });
  return item;
}

function preview(msg) {
  if (!msg.recalled) return summary(msg);
  if (Number(msg.userid) === Number(me.id)) return t('recalled_by_me');
  return t('recalled_by', {name: displayName(userOf(msg.userid))});
}

function senderPrefix(c, msg) {
  if (c.cmd !== CMD.GROUP || Number(msg.userid) === Number(me.id) || msg.recalled) return '';
  return displayName(userOf(msg.userid)) + ': ';
}

function byRecent(keyOf) {
  return function (a, b) {
    let ca = state.convs[keyOf(a)], cb = state.convs[keyOf(b)];
    let ta = ca && ca.last ? ca.last.msgid || Infinity : 0;
    let tb = cb && cb.last ? cb.last.msgid || Infinity : 0;
    return tb - ta;
  };
}

function groupOf(id) {
  return state.groups.filter(function (g) { return g.id === id; })[0];
}

// Recent conversations, newest first: every one with a message in it.
function renderChats() {
  let list = $('chat-list');
  list.textContent = '';
  let convs = Object.keys(state.convs).map(function (k) { return state.convs[k]; })
    .filter(function (c) { return c.last; });
  convs.sort(function (a, b) { return (b.last.msgid || Infinity) - (a.last.msgid || Infinity); });
  convs.forEach(function (c) {
    let who;
    if (c.cmd === CMD.GROUP) {
      let g = groupOf(c.dstid);
      who = {id: c.dstid, nickname: g ? g.name : t('tab_groups') + ' ' + c.dstid, avatar: g && g.icon};
    } else {
      who = userOf(c.dstid);
    }
    list.appendChild(listItem(c.key, who, titleOf(c), ''));
  });
  $('chats-empty').hidden = convs.length > 0;
}

function renderFriends() {
  let list = $('friend-list');
  list.textContent = '';
  let friendKey = function (u) { return convKey(CMD.USER, u.id); };
  state.friends.slice().sort(byRecent(friendKey)).forEach(function (u) {
    let sub = (u.online ? t('online') + ' · ' : '') + 'ID ' + u.id + (u.memo ? ' · ' + u.memo : '');
    list.appendChild(listItem(friendKey(u), u, displayName(u), sub));
  });
  $('friend-empty').hidden = state.friends.length > 0;
  renderBadges();
}

function renderGroups() {
  let list = $('group-list');
  list.textContent = '';
  let groupKey = function (g) { return convKey(CMD.GROUP, g.id); };
  state.groups.slice().sort(byRecent(groupKey)).forEach(function (g) {
    let who = {id: g.id, nickname: g.name, avatar: g.icon};
    list.appendChild(listItem(groupKey(g), who, g.name, t('group_id') + ' ' + g.id + (g.memo ? ' · ' + g.memo : '')));
  });
  $('group-empty').hidden = state.groups.length > 0;
  renderBadges();
}

export function renderBadges() {
  let total = 0;
  Object.keys(state.unread).forEach(function (key) { total += state.unread[key] || 0; });
  let badge = document.querySelector('.tabbar .tab[data-tab=chats] .badge');
  badge.hidden = !total;
  badge.textContent = total > 99 ? '99+' : String(total);
  document.title = (total ? '(' + (total > 99 ? '99+' : total) + ') ' : '') + 'imchat';
}

export function renderLists() { renderChats(); renderFriends(); renderGroups(); }

export function renderMe() {
  let fresh = avatar(me, 'avatar-lg');
  fresh.id = 'me-avatar';
  $('me-avatar').replaceWith(fresh);
  $('me-name').textContent = displayName(me);
  $('me-id').textContent = String(me.id);
  $('me-mobile').textContent = me.mobile || '';
  $('nickname-form').elements.nickname.value = me.nickname || '';
}

/* ---------- conversations ---------- */

export function titleOf(c) {
  if (c.cmd === CMD.GROUP) {
    let g = groupOf(c.dstid);
    return g ? g.name : t('tab_groups') + ' ' + c.dstid;
  }
  return displayName(userOf(c.dstid));
}

export function openConversation(key) {
  let c = conv(key);
  state.open = c;
  app.classList.add('in-convo');
  $('chat-empty').hidden = true;
  $('convo').hidden = false;
  $('members-panel').hidden = true;
  $('profile-panel').hidden = true;
  $('members-btn').hidden = c.cmd !== CMD.GROUP;
  $('profile-btn').hidden = c.cmd !== CMD.USER;
  $('convo-title').textContent = titleOf(c);
  $('emoji-panel').hidden = true;
  showStatus();
  markRead(c);
  renderLists();
  renderMessages(true);
  if (!c.historyLoaded) loadHistory(c, false);
  if (window.matchMedia('(min-width: 760px)').matches) $('text-input').focus();
}

export function closeConversation() {
  state.open = null;
  hideMenu();
  app.classList.remove('in-convo');
  $('convo').hidden = true;
  $('chat-empty').hidden = false;
  renderLists();
}

export function loadHistory(c, older) {
  if (c.loading || (older && !c.hasOlder)) return;
  c.loading = true;
  setHistoryNote(c);
  let fields = {cmd: c.cmd, dstid: c.dstid, limit: HISTORY_PAGE};
  if (older) fields.before = oldestMsgid(c);
  im.api('/chat/history', fields, 'GET').then(function (reply) {
    let rows = reply.rows || [];
    rows.forEach(function (m) { if (m.cmd === c.cmd) remember(c, m); });
    c.loading = false;
    c.historyLoaded = true;
    c.hasOlder = rows.length >= HISTORY_PAGE;
    if (state.open === c) {
      let box = $('messages');
      let fromBottom = box.scrollHeight - box.scrollTop;
      renderMessages(!older);
      if (older) box.scrollTop = box.scrollHeight - fromBottom;
      // A screen tall enough to show the whole page cannot scroll: fetch on.
      if (c.hasOlder && box.scrollHeight <= box.clientHeight) loadHistory(c, true);
      markRead(c);
    }
    renderLists();
  }, function (error) {
    c.loading = false;
    setHistoryNote(c);
    fail(error);
  });
}

function setHistoryNote(c) {
  let note = $('history-note');
  if (state.open !== c) return;
  note.textContent = c.loading ? t('loading') : (c.hasOlder && c.historyLoaded ? t('load_older') : t('no_more'));
}

export function renderMessages(toBottom) {
  let c = state.open;
  if (!c) return;
  let box = $('messages');
  let atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  let list = $('msg-list');
  list.textContent = '';
  sortedMessages(c).forEach(function (msg) { list.appendChild(messageElement(msg)); });
  setHistoryNote(c);
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
}

export function appendMessage(msg) {
  let box = $('messages');
  let atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  $('msg-list').appendChild(messageElement(msg));
  if (atBottom || Number(msg.userid) === Number(me.id)) box.scrollTop = box.scrollHeight;
}

function messageElement(msg) {
  let mine = Number(msg.userid) === Number(me.id);
  let sender = mine ? me : userOf(msg.userid);
  let meta = h('div', {className: 'msg-meta'}, [
    h('time', {text: formatTime(msg.createat || msg.localTime)})
  ]);
  if (mine && !msg.recalled) meta.appendChild(stateElement(msg));
  let body = msg.recalled ? h('div', {className: 'bubble bubble-recalled', text: t('recalled')}) : bubble(msg);
  let li = h('li', {className: 'msg ' + (mine ? 'mine' : 'theirs') + ' media-' + msg.media +
                    (msg.recalled ? ' recalled' : ''),
                    dataset: {msgid: msg.msgid || '', state: shownState(msg), media: String(msg.media)}}, [
    avatar(sender),
    h('div', {className: 'msg-main'}, [
      h('div', {className: 'msg-name', text: mine ? displayName(me) : displayName(sender)}),
      body,
      meta
    ])
  ]);
  if (mine) bindMenu(li, msg);
  msg.el = li;
  return li;
}

// 'read' once the friend's read position has passed one of my 1:1 messages.
function shownState(msg) {
  let status = msg.state || 'sent';
  if (status !== 'sent' || msg.cmd !== CMD.USER || !msg.msgid) return status;
  let c = state.convs[convKey(CMD.USER, msg.dstid)];
  return c && c.peerreadmsgid >= msg.msgid ? 'read' : status;
}

function stateElement(msg) {
  let status = shownState(msg);
  let text = status === 'sending' ? t('sending') : status === 'failed'
    ? t('not_sent', {why: msg.error || ''}) : status === 'read' ? t('read') : t('sent');
  return h('span', {className: 'msg-state state-' + status, text: text});
}

export function updateState(msg) {
  if (!msg.el) return;
  msg.el.dataset.state = shownState(msg);
  msg.el.dataset.msgid = msg.msgid || '';
  let meta = msg.el.querySelector('.msg-meta');
  let old = meta.querySelector('.msg-state');
  if (old) old.replaceWith(stateElement(msg));
  if (msg.createat) meta.querySelector('time').textContent = formatTime(msg.createat);
}

// The friend has read further: my messages up to there say so.
export function refreshReceipts(c) {
  if (c.cmd !== CMD.USER || state.open !== c) return;
  Object.keys(c.byId).forEach(function (k) {
    let msg = c.byId[k];
    if (msg.el && Number(msg.userid) === Number(me.id) && !msg.recalled) updateState(msg);
  });
}

// A message changed (recalled): draw it again where it is.
export function redrawMessage(msg) {
  if (!msg.el || !msg.el.isConnected) return;
  let old = msg.el;
  old.replaceWith(messageElement(msg));
  hideMenu();
}

// Under the conversation's title: "… is typing", else whether the friend is online.
export function showStatus() {
  let c = state.open;
  let line = $('convo-status');
  let text = '', typing = false;
  if (c && c.cmd === CMD.USER) {
    let friend = userOf(c.dstid);
    typing = isTyping(c.dstid);
    if (typing) text = t('typing', {name: displayName(friend)});
    else if (isFriend(c.dstid)) text = friend.online ? t('online') : t('offline');
  }
  line.textContent = text;
  line.classList.toggle('is-typing', typing);
}

/* ---------- a message's menu: right click, or a long press on a touch screen ---------- */

const LONG_PRESS_MS = 550;
let menuFor = null;

function bindMenu(li, msg) {
  li.addEventListener('contextmenu', function (e) {
    if (!canRecall(msg)) return;
    e.preventDefault();
    showMenu(msg, e.clientX, e.clientY);
  });
  let timer = null, pressed = false;
  li.addEventListener('touchstart', function (e) {
    pressed = false;
    if (!canRecall(msg) || e.touches.length !== 1) return;
    let touch = e.touches[0];
    timer = setTimeout(function () {
      pressed = true;
      showMenu(msg, touch.clientX, touch.clientY);
    }, LONG_PRESS_MS);
  }, {passive: true});
  ['touchmove', 'touchcancel'].forEach(function (name) {
    li.addEventListener(name, function () { clearTimeout(timer); }, {passive: true});
  });
  // Lifting the finger after a long press must not click (which closes the menu).
  li.addEventListener('touchend', function (e) {
    clearTimeout(timer);
    if (pressed) e.preventDefault();
    pressed = false;
  });
}

function showMenu(msg, x, y) {
  let menu = $('msg-menu');
  menuFor = msg;
  menu.hidden = false;
  let width = menu.offsetWidth, height = menu.offsetHeight;
  menu.style.left = Math.max(4, Math.min(x, window.innerWidth - width - 4)) + 'px';
  menu.style.top = Math.max(4, Math.min(y, window.innerHeight - height - 4)) + 'px';
  $('recall-btn').focus();
}

export function hideMenu() {
  $('msg-menu').hidden = true;
  menuFor = null;
}

export function recallFromMenu() {
  let msg = menuFor;
  hideMenu();
  if (msg && canRecall(msg)) recall(msg);
  else if (msg) toast(t('recall_too_late', {s: RECALL_SECONDS}));
}

export function setBanner(text) {
  let banner = $('conn-banner');
  banner.textContent = text || '';
  banner.hidden = !text;
  app.classList.toggle('offline', !!text);
}

export function addFriend(fields) {
  return im.api('/contact/addfriend', fields).then(function () {
    toast(t('friend_added'));
    return loadFriends().then(function () { if (state.open) renderMessages(false); });
  }, fail);
}

export function showMembers() {
  let c = state.open;
  if (!c || c.cmd !== CMD.GROUP) return;
  $('members-group-id').textContent = String(c.dstid);
  $('members-panel').hidden = false;
  return loadGroups().then(function () { return drawMembers(c); });
}

function drawMembers(c) {
  let list = $('member-list');
  let group = groupOf(c.dstid);
  let owner = group ? Number(group.ownerid) : 0;
  let iOwn = owner === Number(me.id);
  return im.api('/contact/members', {dstid: c.dstid}, 'GET').then(function (reply) {
    let rows = reply.rows || [];
    list.textContent = '';
    rows.forEach(function (u) {
      state.users[u.id] = u;
      let name = displayName(u);
      let actions = h('div', {className: 'member-actions'});
      if (u.id !== me.id && !isFriend(u.id)) {
        actions.appendChild(h('button', {type: 'button', className: 'btn btn-small', text: t('add_as_friend'),
                                         onclick: function () { addFriend({dstid: u.id}); }}));
      }
      if (iOwn && u.id !== me.id) {
        actions.appendChild(h('button', {type: 'button', className: 'btn btn-small member-transfer', text: t('transfer'),
                                         onclick: function () {
                                           contactAction(t('transfer_confirm', {name: name}), t('transfer'), '/contact/transfer',
                                                         {dstid: c.dstid, memberid: u.id}, t('transferred', {name: name}))
                                             .then(function (done) { if (done) showMembers(); });
                                         }}));
        actions.appendChild(h('button', {type: 'button', className: 'btn btn-small btn-danger member-kick', text: t('kick'),
                                         onclick: function () {
                                           contactAction(t('kick_confirm', {name: name}), t('kick'), '/contact/kick',
                                                         {dstid: c.dstid, memberid: u.id}, t('kicked', {name: name}))
                                             .then(function (done) { if (done) showMembers(); });
                                         }}));
      }
      let item = h('li', {className: 'list-item', dataset: {userId: String(u.id)}}, [
        avatar(u, u.online ? 'is-online' : ''),
        h('div', {className: 'list-main'}, [
          h('div', {className: 'list-name'}, [
            name + (u.id === me.id ? ' (' + t('you') + ')' : ''),
            u.id === owner ? h('span', {className: 'owner-tag', text: t('owner')}) : null
          ]),
          h('div', {className: 'list-sub', text: 'ID ' + u.id + (u.online ? ' · ' + t('online') : '')})
        ]),
        actions
      ]);
      list.appendChild(item);
    });
    $('members-panel').querySelector('.bar-title').textContent = t('members') + ' · ' + t('members_count', {n: rows.length});
  }, fail);
}

// Leave the open group, after asking.
export function leaveGroup() {
  let c = state.open;
  if (!c || c.cmd !== CMD.GROUP) return;
  contactAction(t('leave_confirm', {name: titleOf(c)}), t('leave_group'), '/contact/quitcommunity',
                {dstid: c.dstid}, t('left_group')).then(function (done) {
    if (!done) return;
    forget(c);
    loadGroups();
  });
}

/* ---------- a friend's profile ---------- */

export function showProfile() {
  let c = state.open;
  if (!c || c.cmd !== CMD.USER) return;
  let friend = userOf(c.dstid);
  let fresh = avatar(friend, 'avatar-lg' + (friend.online ? ' is-online' : ''));
  fresh.id = 'profile-avatar';
  $('profile-avatar').replaceWith(fresh);
  $('profile-name').textContent = displayName(friend);
  $('profile-id').textContent = String(friend.id);
  $('profile-online').textContent = isFriend(friend.id) ? (friend.online ? t('online') : t('offline')) : '';
  $('unfriend-btn').hidden = !isFriend(friend.id);
  $('profile-panel').hidden = false;
}

export function unfriend() {
  let c = state.open;
  if (!c || c.cmd !== CMD.USER) return;
  contactAction(t('unfriend_confirm', {name: titleOf(c)}), t('unfriend'), '/contact/delfriend',
                {dstid: c.dstid}, t('unfriended')).then(function (done) {
    if (!done) return;
    forget(c);
    loadFriends();
  });
}

// After unfriending or leaving: the conversation leaves the lists (its history stays
// on the server) and the screen.
function forget(c) {
  delete state.convs[c.key];
  delete state.unread[c.key];
  if (state.open === c) closeConversation();
  $('profile-panel').hidden = true;
  $('members-panel').hidden = true;
  renderLists();
}

/* ---------- confirmation ---------- */

// Ask first; resolves true once `path` has done it, false if the person said no.
function contactAction(question, okLabel, path, fields, doneMessage) {
  return confirmFirst(question, okLabel).then(function (yes) {
    if (!yes) return false;
    return im.api(path, fields).then(function () {
      toast(doneMessage);
      return true;
    }, function (error) {
      fail(error);
      return false;
    });
  });
}

export function confirmFirst(question, okLabel) {
  let dialog = $('confirm');
  $('confirm-text').textContent = question;
  $('confirm-ok').textContent = okLabel || t('ok');
  dialog.returnValue = '';
  return new Promise(function (resolve) {
    dialog.addEventListener('close', function () { resolve(dialog.returnValue === 'ok'); }, {once: true});
    dialog.showModal();
  });
}

// A profile arrived: names and avatars on screen may change.
events.addEventListener('profile', () => {
  renderLists();
  if (state.open) {
    $('convo-title').textContent = titleOf(state.open);
    renderMessages(false);
  }
});
