/* The views of the chat page: the tabs and their lists, the Me tab, the open
 * conversation and its messages, and a group's members. They read the state and
 * redraw; sending and receiving live in messages.js. */
import {im, t, h, $, CMD, avatar, displayName, formatTime, toast} from './util.js';
import {state, me, conv, convKey, userOf, sortedMessages, oldestMsgid, remember, isFriend,
        events} from './state.js';
import {summary, bubble} from './bubbles.js';
import {markRead} from './messages.js';
import {fail} from './session.js';

const HISTORY_PAGE = 30;
const app = $('app');

/* ---------- tabs and lists ---------- */

export function showTab(tab) {
  state.tab = tab;
  app.dataset.tab = tab;
  ['friends', 'groups', 'me'].forEach(function (name) {
    $('tab-' + name).hidden = name !== tab;
  });
  document.querySelectorAll('.tabbar .tab').forEach(function (el) {
    el.classList.toggle('active', el.dataset.tab === tab);
    el.setAttribute('aria-current', el.dataset.tab === tab ? 'page' : 'false');
  });
  let title = $('list-title');
  title.setAttribute('data-i18n', 'tab_' + tab);
  title.textContent = t('tab_' + tab);
  $('list-action').hidden = tab === 'me';
  $('list-action').setAttribute('aria-expanded', 'false');
  $('add-friend-form').hidden = true;
  $('group-forms').hidden = true;
  if (tab === 'friends') loadFriends();
  if (tab === 'groups') loadGroups();
  if (tab === 'me') renderMe();
}

export function loadFriends() {
  return im.api('/contact/loadfriend', {}, 'GET').then(function (reply) {
    state.friends = reply.rows || [];
    state.friends.forEach(function (u) { state.users[u.id] = u; });
    renderFriends();
  }, fail);
}

export function loadGroups() {
  return im.api('/contact/loadcommunity', {}, 'GET').then(function (reply) {
    state.groups = reply.rows || [];
    renderGroups();
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
      h('div', {className: 'list-sub', text: last ? senderPrefix(c, last) + summary(last) : subtitle})
    ]),
    unread ? h('span', {className: 'badge', text: unread > 99 ? '99+' : unread}) : null
  ]);
  item.addEventListener('click', function () { openConversation(key); });
  item.addEventListener('keydown', function (e) { if (e.key === 'Enter') openConversation(key); });
  return item;
}

function senderPrefix(c, msg) {
  if (c.cmd !== CMD.GROUP || Number(msg.userid) === Number(me.id)) return '';
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
  let totals = {friends: 0, groups: 0};
  Object.keys(state.unread).forEach(function (key) {
    totals[key.indexOf(CMD.GROUP + ':') === 0 ? 'groups' : 'friends'] += state.unread[key] || 0;
  });
  document.querySelectorAll('.tabbar .tab').forEach(function (el) {
    let badge = el.querySelector('.badge');
    if (!badge) return;
    let n = totals[el.dataset.tab] || 0;
    badge.hidden = !n;
    badge.textContent = n > 99 ? '99+' : String(n);
  });
  let total = totals.friends + totals.groups;
  document.title = (total ? '(' + total + ') ' : '') + 'imchat';
}

export function renderLists() { renderFriends(); renderGroups(); }

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
    let g = state.groups.filter(function (x) { return x.id === c.dstid; })[0];
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
  $('members-btn').hidden = c.cmd !== CMD.GROUP;
  $('convo-title').textContent = titleOf(c);
  $('emoji-panel').hidden = true;
  markRead(c);
  renderLists();
  renderMessages(true);
  if (!c.historyLoaded) loadHistory(c, false);
  if (window.matchMedia('(min-width: 760px)').matches) $('text-input').focus();
}

export function closeConversation() {
  state.open = null;
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
    rows.forEach(function (m) { remember(c, m); });
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
  if (mine) meta.appendChild(stateElement(msg));
  let li = h('li', {className: 'msg ' + (mine ? 'mine' : 'theirs') + ' media-' + msg.media,
                    dataset: {msgid: msg.msgid || '', state: msg.state || 'sent', media: String(msg.media)}}, [
    avatar(sender),
    h('div', {className: 'msg-main'}, [
      h('div', {className: 'msg-name', text: mine ? displayName(me) : displayName(sender)}),
      bubble(msg),
      meta
    ])
  ]);
  msg.el = li;
  return li;
}

function stateElement(msg) {
  let status = msg.state || 'sent';
  let text = status === 'sending' ? t('sending') : status === 'failed'
    ? t('not_sent', {why: msg.error || ''}) : t('sent');
  return h('span', {className: 'msg-state state-' + status, text: text});
}

export function updateState(msg) {
  if (!msg.el) return;
  msg.el.dataset.state = msg.state;
  msg.el.dataset.msgid = msg.msgid || '';
  let meta = msg.el.querySelector('.msg-meta');
  let old = meta.querySelector('.msg-state');
  if (old) old.replaceWith(stateElement(msg));
  if (msg.createat) meta.querySelector('time').textContent = formatTime(msg.createat);
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
  let list = $('member-list');
  list.textContent = '';
  $('members-panel').hidden = false;
  im.api('/contact/members', {dstid: c.dstid}, 'GET').then(function (reply) {
    let rows = reply.rows || [];
    rows.forEach(function (u) {
      state.users[u.id] = u;
      let item = h('li', {className: 'list-item', dataset: {userId: String(u.id)}}, [
        avatar(u, u.online ? 'is-online' : ''),
        h('div', {className: 'list-main'}, [
          h('div', {className: 'list-name', text: displayName(u) + (u.id === me.id ? ' (' + t('you') + ')' : '')}),
          h('div', {className: 'list-sub', text: 'ID ' + u.id + (u.online ? ' · ' + t('online') : '')})
        ]),
        u.id !== me.id && !isFriend(u.id) ? h('button', {type: 'button', className: 'btn btn-small', text: t('add_as_friend'),
                                                    onclick: function () { addFriend({dstid: u.id}); }}) : null
      ]);
      list.appendChild(item);
    });
    $('members-panel').querySelector('.bar-title').textContent = t('members') + ' · ' + t('members_count', {n: rows.length});
  }, fail);
}

// A profile arrived: names and avatars on screen may change.
events.addEventListener('profile', () => {
  renderLists();
  if (state.open) {
    $('convo-title').textContent = titleOf(state.open);
    renderMessages(false);
  }
});
