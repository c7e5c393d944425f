/* The open conversation: its header (title, and "online" or "… is typing"), its
 * messages with their state (sending, sent, read, not sent) and the history note at the
 * top. New messages are appended and a changed one is redrawn where it is; the whole
 * list is drawn again only on opening, when history arrives, or when names change. */
import {t, h, $, CMD, avatar, displayName, formatTime} from './util.js';
import {state, me, convKey, userOf, isFriend, sortedMessages, titleOf} from './state.js';
import {isTyping} from './presence.js';
import {on} from './events.js';
import {bubble} from './bubbles.js';
import {bindMenu, hideMenu} from './msgmenu.js';

const app = $('app');
// Each message's element on screen.
const shown = new WeakMap();
let handlers = null;
let friendsDrawn = '';

// handlers: close(), loadOlder(c), addFriend(id) (a contact card's button)
export function mountPane(given) {
  handlers = given;
  $('back-btn').addEventListener('click', handlers.close);
  $('history-note').addEventListener('click', () => {
    if (state.open) handlers.loadOlder(state.open);
  });
  $('messages').addEventListener('scroll', function () {
    if (state.open && this.scrollTop < 40) handlers.loadOlder(state.open);
  });
  on('open', (c) => (c ? drawOpen(c) : drawClosed()));
  on('message', (detail) => { if (state.open === detail.c) appendMessage(detail.msg); });
  on('message-state', updateState);
  on('message-dropped', (msg) => { if (shown.has(msg)) shown.get(msg).remove(); });
  on('recalled', redrawMessage);
  on('receipts', refreshReceipts);
  on('history', onHistory);
  on('typing', drawStatus);
  on('presence', drawStatus);
  // A contact card offers "Add as friend" to those who are not.
  on('friends', () => {
    drawStatus();
    const ids = state.friends.map((f) => f.id).sort().join(',');
    if (ids !== friendsDrawn) redraw();
    friendsDrawn = ids;
  });
  on('groups', () => { if (state.open) $('convo-title').textContent = titleOf(state.open); });
  on('profile', redraw);
  on('me', redraw);
  document.addEventListener('imchat:lang', () => { redraw(); drawStatus(); });
}

function drawOpen(c) {
  app.classList.add('in-convo');
  $('chat-empty').hidden = true;
  $('convo').hidden = false;
  $('members-btn').hidden = c.cmd !== CMD.GROUP;
  $('profile-btn').hidden = c.cmd !== CMD.USER;
  $('convo-title').textContent = titleOf(c);
  drawStatus();
  drawMessages(true);
  if (window.matchMedia('(min-width: 760px)').matches) $('text-input').focus();
}

function drawClosed() {
  hideMenu();
  app.classList.remove('in-convo');
  $('convo').hidden = true;
  $('chat-empty').hidden = false;
}

// Names or avatars changed: the title and the messages show the new ones.
function redraw() {
  if (!state.open) return;
  $('convo-title').textContent = titleOf(state.open);
  drawMessages(false);
}

function onHistory(detail) {
  const c = detail.c;
  if (state.open !== c) return;
  if (!detail.arrived) return drawHistoryNote(c);
  const box = $('messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  drawMessages(!detail.older);
  if (detail.older) box.scrollTop = box.scrollHeight - fromBottom;
  // A screen tall enough to show the whole page cannot scroll: fetch on.
  if (c.hasOlder && box.scrollHeight <= box.clientHeight) handlers.loadOlder(c);
}

function drawHistoryNote(c) {
  $('history-note').textContent = c.loading ? t('loading')
    : (c.hasOlder && c.historyLoaded ? t('load_older') : t('no_more'));
}

function drawMessages(toBottom) {
  const c = state.open;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const list = $('msg-list');
  list.textContent = '';
  sortedMessages(c).forEach((msg) => list.appendChild(messageElement(msg)));
  drawHistoryNote(c);
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function appendMessage(msg) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  $('msg-list').appendChild(messageElement(msg));
  if (atBottom || Number(msg.userid) === Number(me.id)) box.scrollTop = box.scrollHeight;
}

function messageElement(msg) {
  const mine = Number(msg.userid) === Number(me.id);
  const sender = mine ? me : userOf(msg.userid);
  const meta = h('div', {className: 'msg-meta'}, [
    h('time', {text: formatTime(msg.createat || msg.localTime)})
  ]);
  if (mine && !msg.recalled) meta.appendChild(stateElement(msg));
  const body = msg.recalled ? h('div', {className: 'bubble bubble-recalled', text: t('recalled')})
    : bubble(msg, handlers.addFriend);
  const li = h('li', {className: 'msg ' + (mine ? 'mine' : 'theirs') + ' media-' + msg.media +
                      (msg.recalled ? ' recalled' : ''),
                      dataset: {msgid: msg.msgid || '', state: shownState(msg), media: String(msg.media)}}, [
    avatar(sender),
    h('div', {className: 'msg-main'}, [
      h('div', {className: 'msg-name', text: displayName(sender)}),
      body,
      meta
    ])
  ]);
  if (mine) bindMenu(li, msg);
  shown.set(msg, li);
  return li;
}

// 'read' once the friend's read position has passed one of my 1:1 messages.
function shownState(msg) {
  const status = msg.state || 'sent';
  if (status !== 'sent' || msg.cmd !== CMD.USER || !msg.msgid) return status;
  const c = state.convs[convKey(CMD.USER, msg.dstid)];
  return c && c.peerreadmsgid >= msg.msgid ? 'read' : status;
}

function stateElement(msg) {
  const status = shownState(msg);
  const text = status === 'sending' ? t('sending') : status === 'failed'
    ? t('not_sent', {why: msg.error || ''}) : status === 'read' ? t('read') : t('sent');
  return h('span', {className: 'msg-state state-' + status, text: text});
}

function updateState(msg) {
  const li = shown.get(msg);
  if (!li) return;
  li.dataset.state = shownState(msg);
  li.dataset.msgid = msg.msgid || '';
  const meta = li.querySelector('.msg-meta');
  const old = meta.querySelector('.msg-state');
  if (old) old.replaceWith(stateElement(msg));
  if (msg.createat) meta.querySelector('time').textContent = formatTime(msg.createat);
}

// The friend has read further: my messages up to there say so.
function refreshReceipts(c) {
  if (c.cmd !== CMD.USER || state.open !== c) return;
  Object.keys(c.byId).forEach((k) => {
    const msg = c.byId[k];
    if (Number(msg.userid) === Number(me.id) && !msg.recalled) updateState(msg);
  });
}

// A message changed (recalled): drawn again where it is.
function redrawMessage(msg) {
  const old = shown.get(msg);
  if (!old || !old.isConnected) return;
  old.replaceWith(messageElement(msg));
  hideMenu();
}

// Under the conversation's title: "… is typing", else whether the friend is online.
function drawStatus() {
  const c = state.open;
  const line = $('convo-status');
  let text = '', typing = false;
  if (c && c.cmd === CMD.USER) {
    const friend = userOf(c.dstid);
    typing = isTyping(c.dstid);
    if (typing) text = t('typing', {name: displayName(friend)});
    else if (isFriend(c.dstid)) text = friend.online ? t('online') : t('offline');
  }
  line.textContent = text;
  line.classList.toggle('is-typing', typing);
}
