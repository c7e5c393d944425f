/* The three lists beside the conversation: Chats (every conversation with a message,
 * newest first), Friends and Groups (those with recent messages first), and the unread
 * count on the Chats tab and in the page's title. A change to one conversation redraws
 * its row in each list and nothing else. */
import {t, h, $, CMD, avatar, displayName, formatTime} from './util.js';
import {state, me, userOf, convKey, groupOf, titleOf, totalUnread} from './state.js';
import {summary} from './bubbles.js';
import {on} from './events.js';
import {keyedList} from './rows.js';

// pick(key): what choosing a row does (open that conversation).
export function mountLists(pick) {
  const chats = keyedList($('chat-list'), chatKeys, chatRow, pick);
  const friends = keyedList($('friend-list'), friendKeys, friendRow, pick);
  const groups = keyedList($('group-list'), groupKeys, groupRow, pick);
  const lists = [chats, friends, groups];
  let activeKey = null;

  const updated = (key) => { lists.forEach((list) => list.update(key)); };
  const synced = (...which) => {
    which.forEach((list) => list.sync());
    $('chats-empty').hidden = chats.count() > 0;
    $('friend-empty').hidden = state.friends.length > 0;
    $('group-empty').hidden = state.groups.length > 0;
    drawBadges();
  };
  const all = () => synced(chats, friends, groups);

  on('conversation', (c) => {
    updated(c.key);
    $('chats-empty').hidden = chats.count() > 0;
    drawBadges();
  });
  on('forgotten', (c) => { updated(c.key); synced(); });
  on('conversations', all);
  // Names, avatars and titles in the Chats list come from these too.
  on('friends', () => synced(friends, chats));
  on('groups', () => synced(groups, chats));
  on('profile', all);
  on('presence', (id) => updated(convKey(CMD.USER, id)));
  on('open', (c) => {
    const was = activeKey;
    activeKey = c ? c.key : null;
    if (was) updated(was);
    if (activeKey) updated(activeKey);
  });
  document.addEventListener('imchat:lang', all);
  // Until the server's list arrives, the Chats tab says it has none.
  $('chats-empty').hidden = false;
}

function conversations() {
  return Object.keys(state.convs).map((k) => state.convs[k]);
}

function chatKeys() {
  const convs = conversations().filter((c) => c.last);
  convs.sort((a, b) => (b.last.msgid || Infinity) - (a.last.msgid || Infinity));
  return convs.map((c) => c.key);
}

// Friends and groups with the most recent message first (a message still sending
// counts as the newest), the others after them as the server listed them.
function byRecent(keys) {
  const at = (key) => {
    const c = state.convs[key];
    return c && c.last ? c.last.msgid || Infinity : 0;
  };
  return keys.slice().sort((a, b) => at(b) - at(a));
}

function friendKeys() { return byRecent(state.friends.map((u) => convKey(CMD.USER, u.id))); }
function groupKeys() { return byRecent(state.groups.map((g) => convKey(CMD.GROUP, g.id))); }

function chatRow(key) {
  const c = state.convs[key];
  let who;
  if (c.cmd === CMD.GROUP) {
    const g = groupOf(c.dstid);
    who = {id: c.dstid, nickname: g ? g.name : t('tab_groups') + ' ' + c.dstid, avatar: g && g.icon};
  } else {
    who = userOf(c.dstid);
  }
  return row(key, who, titleOf(c), '');
}

function friendRow(key) {
  const id = Number(key.split(':')[1]);
  const u = state.friends.find((f) => f.id === id);
  const sub = (u.online ? t('online') + ' · ' : '') + 'ID ' + u.id + (u.memo ? ' · ' + u.memo : '');
  return row(key, u, displayName(u), sub);
}

function groupRow(key) {
  const g = groupOf(Number(key.split(':')[1]));
  const who = {id: g.id, nickname: g.name, avatar: g.icon};
  return row(key, who, g.name, t('group_id') + ' ' + g.id + (g.memo ? ' · ' + g.memo : ''));
}

// A row: avatar (with the online dot), name, time and the last message (or
// `subtitle` while there is none), and the unread count.
function row(key, who, title, subtitle) {
  const c = state.convs[key];
  const last = c && c.last;
  const unread = state.unread[key] || 0;
  const active = !!state.open && state.open.key === key;
  return h('li', {className: 'list-item' + (active ? ' active' : '')}, [
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

function drawBadges() {
  const total = totalUnread();
  const badge = document.querySelector('.tabbar .tab[data-tab=chats] .badge');
  badge.hidden = !total;
  badge.textContent = total > 99 ? '99+' : String(total);
  document.title = (total ? '(' + (total > 99 ? '99+' : total) + ') ' : '') + 'imchat';
}
