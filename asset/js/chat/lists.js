/* The three lists beside the conversation: Chats (every conversation with a message,
 * newest first), Friends and Groups (those with recent messages first), and the unread
 * count on the Chats tab and in the page's title. A change to one conversation redraws
 * its row in each list and nothing else. */
import {t, h, $, CMD, avatar, displayName, formatTime} from './util.js';
import {state, me, userOf, convKey, groupOf, titleOf, totalUnread, draftOf, isMuted} from './state.js';
import {summary} from './bubbles.js';
import {on} from './events.js';
import {keyedList} from './rows.js';

// pick(key): what choosing a row does (open that conversation); addFriend(): what the
// first run's button does (the Friends tab with its form open).
export function mountLists(pick, addFriend) {
  const chats = keyedList($('chat-list'), chatKeys, chatRow, pick);
  const friends = keyedList($('friend-list'), friendKeys, friendRow, pick);
  const groups = keyedList($('group-list'), groupKeys, groupRow, pick);
  const lists = [chats, friends, groups];
  let activeKey = null;

  const updated = (key) => { lists.forEach((list) => list.update(key)); };
  const synced = (...which) => {
    which.forEach((list) => list.sync());
    drawEmpty();
    $('friend-empty').hidden = state.friends.length > 0;
    $('group-empty').hidden = state.groups.length > 0;
    drawBadges();
  };
  const all = () => synced(chats, friends, groups);

  on('mentioned', (c) => { updated(c.key); drawBadges(); });
  // No chats: someone with friends picks one; someone without learns how to get one,
  // with their own id and mobile to share.
  let friendsKnown = false;
  const drawEmpty = () => {
    const empty = chats.count() === 0;
    const alone = friendsKnown && state.friends.length === 0 && state.groups.length === 0;
    $('chats-empty').hidden = !empty || alone;
    $('first-run').hidden = !(empty && alone);
    $('first-run-id').textContent = String(me.id);
    $('first-run-mobile').textContent = me.mobile || '';
    const hint = document.querySelector('#chat-empty p');
    hint.setAttribute('data-i18n', alone ? 'first_run_body' : 'pick_conversation');
    hint.textContent = t(hint.getAttribute('data-i18n'));
  };
  $('first-run-add').addEventListener('click', addFriend);
  on('conversation', (c) => {
    updated(c.key);
    drawEmpty();
    drawBadges();
  });
  on('forgotten', (c) => { updated(c.key); synced(); });
  on('conversations', all);
  // Names, avatars and titles in the Chats list come from these too.
  on('friends', () => { friendsKnown = true; synced(friends, chats); });
  on('groups', () => synced(groups, chats));
  on('profile', all);
  on('presence', (id) => updated(convKey(CMD.USER, id)));
  on('open', (c) => {
    const was = activeKey;
    activeKey = c ? c.key : null;
    if (was) updated(was);
    if (activeKey) updated(activeKey);
  });
  on('me', drawEmpty);
  document.addEventListener('imchat:lang', all);
  // Until the server's list arrives, the Chats tab says it has none.
  $('chats-empty').hidden = false;
}

function conversations() {
  return Object.keys(state.convs).map((k) => state.convs[k]);
}

function chatKeys() {
  // A conversation with only a draft shows too, at the top (as one still sending does).
  const convs = conversations().filter((c) => c.last || draftOf(c));
  const at = (c) => (c.last ? c.last.msgid || Infinity : Infinity);
  convs.sort((a, b) => at(b) - at(a));
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
    who = {id: c.dstid, kind: 'group', nickname: g ? g.name : t('tab_groups') + ' ' + c.dstid, avatar: g && g.icon};
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
  const who = {id: g.id, kind: 'group', nickname: g.name, avatar: g.icon};
  return row(key, who, g.name, t('group_id') + ' ' + g.id + (g.memo ? ' · ' + g.memo : ''));
}

// A row: avatar (with the online dot), name, time and the last message (or
// `subtitle` while there is none), and the unread count.
function row(key, who, title, subtitle) {
  const c = state.convs[key];
  const last = c && c.last;
  const unread = state.unread[key] || 0;
  const active = !!state.open && state.open.key === key;
  const draft = draftOf(c);
  const muted = !!c && isMuted(c);
  // A row is a button's content: phrasing elements only.
  const sub = draft ? [h('span', {className: 'list-draft', text: t('draft') + ' '}), draft.replace(/\s+/g, ' ')]
    : [last ? senderPrefix(c, last) + preview(last) : subtitle];
  return h('li', {className: 'list-item' + (active ? ' active' : ''), 'aria-current': active ? 'true' : null}, [
    avatar(who, who.online ? 'is-online' : ''),
    h('span', {className: 'list-main'}, [
      h('span', {className: 'list-title-row'}, [
        h('span', {className: 'list-name', text: title}),
        muted ? h('span', {className: 'muted-mark', role: 'img', title: t('muted'),
                           'aria-label': t('muted'), text: '\u{1F515}'}) : null,
        h('span', {className: 'list-time', text: last ? formatTime(last.createat) : ''})
      ]),
      h('span', {className: 'list-sub'}, [
        c && c.mentioned ? h('span', {className: 'list-mentioned', text: t('mentioned_me')}) : null
      ].concat(sub))
    ]),
    unread ? h('span', {className: 'badge' + (muted ? ' badge-muted' : ''),
                        text: unread > 99 ? '99+' : unread}) : null
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
