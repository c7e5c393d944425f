/* The open conversation: its header (title, and "online" or "… is typing"), its
 * messages with their state (sending, sent, read, not sent) and the history note at the
 * top. New messages are appended and a changed one is redrawn where it is; the whole
 * list is drawn again only on opening, when history arrives, or when names change. */
import {t, h, $, CMD, avatar, displayName, formatTime, toast} from './util.js';
import {state, me, convKey, userOf, isFriend, sortedMessages, titleOf} from './state.js';
import {isTyping} from './presence.js';
import {on} from './events.js';
import {bubble} from './bubbles.js';
import {bindMenu, hideMenu, showMenuBeside} from './msgmenu.js';
import {quoteElement, reactionsElement, marks} from './richview.js';
import {mentionsMe} from './rich.js';

const app = $('app');
// Each message's element on screen, and back.
const shown = new WeakMap();
const messageOf = new WeakMap();
// Consecutive messages from one person this close together share one avatar, name and
// time.
const GROUP_MS = 5 * 60 * 1000;
let handlers = null;
let friendsDrawn = '';

// handlers: close(), loadOlder(c), addFriend(id) (a contact card's button),
// react(msg, emoji) (a reaction under a bubble)
export function mountPane(given) {
  handlers = given;
  $('back-btn').addEventListener('click', handlers.close);
  $('history-note').addEventListener('click', () => {
    if (state.open) handlers.loadOlder(state.open);
  });
  $('messages').addEventListener('scroll', function () {
    if (state.open && this.scrollTop < 40) handlers.loadOlder(state.open);
  });
  $('messages').addEventListener('keydown', onKey);
  on('open', (c) => (c ? drawOpen(c) : drawClosed()));
  on('message', (detail) => { if (state.open === detail.c) appendMessage(detail.msg); });
  on('message-state', updateState);
  on('message-dropped', (msg) => {
    if (shown.has(msg)) shown.get(msg).remove();
    drawStates();
  });
  on('recalled', redrawMessage);
  on('edited', redrawMessage);
  on('reacted', redrawMessage);
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
  let prev = null;
  sortedMessages(c).forEach((msg) => {
    list.appendChild(messageElement(msg, prev));
    prev = msg;
  });
  drawStates();
  drawHistoryNote(c);
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function appendMessage(msg) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const list = $('msg-list');
  const last = list.lastElementChild;
  list.appendChild(messageElement(msg, last ? messageOf.get(last) : null));
  drawStates();
  if (atBottom || Number(msg.userid) === Number(me.id)) box.scrollTop = box.scrollHeight;
}

// Does `msg` continue `prev`'s run (same person, within minutes, neither recalled)?
function continues(prev, msg) {
  if (!prev || prev.recalled || msg.recalled) return false;
  if (Number(prev.userid) !== Number(msg.userid)) return false;
  const a = Number(prev.createat || prev.localTime), b = Number(msg.createat || msg.localTime);
  return Math.abs(b - a) < GROUP_MS;
}

function messageElement(msg, prev) {
  const mine = Number(msg.userid) === Number(me.id);
  const sender = mine ? me : userOf(msg.userid);
  const meta = h('div', {className: 'msg-meta'}, [
    h('time', {text: formatTime(msg.createat || msg.localTime)})
  ].concat(msg.recalled ? [] : marks(msg)));
  if (mine && !msg.recalled) meta.appendChild(stateElement(msg));
  const body = msg.recalled ? h('div', {className: 'bubble bubble-recalled', text: t('recalled')})
    : bubble(msg, handlers.addFriend);
  const li = h('li', {className: 'msg ' + (mine ? 'mine' : 'theirs') + ' media-' + msg.media +
                      (msg.recalled ? ' recalled' : '') + (continues(prev, msg) ? ' cont' : ''),
                      tabindex: '-1',
                      dataset: {msgid: msg.msgid || '', state: shownState(msg), media: String(msg.media)}}, [
    avatar(sender),
    h('div', {className: 'msg-main'}, [
      h('div', {className: 'msg-name', text: displayName(sender)}),
      msg.recalled ? null : quoteElement(msg, jumpTo),
      body,
      msg.recalled ? null : reactionsElement(msg, handlers.react),
      meta
    ])
  ]);
  if (mentionsMe(msg)) li.classList.add('mentions-me');
  bindMenu(li, msg);
  shown.set(msg, li);
  messageOf.set(li, msg);
  return li;
}

// "Sent" and "Read" once each: under my newest message, and under the newest of mine
// the friend has read. Sending and refused show on every message they concern.
function drawStates() {
  const c = state.open;
  if (!c) return;
  let newest = 0, newestRead = 0;
  Object.keys(c.byId).forEach((k) => {
    const msg = c.byId[k];
    if (Number(msg.userid) !== Number(me.id) || msg.recalled) return;
    newest = Math.max(newest, msg.msgid);
    if (shownState(msg) === 'read') newestRead = Math.max(newestRead, msg.msgid);
  });
  $('msg-list').querySelectorAll('.msg.mine .msg-state').forEach((span) => {
    const msg = messageOf.get(span.closest('.msg'));
    if (!msg) return;
    const status = shownState(msg);
    span.hidden = !(status === 'sending' || status === 'failed' ||
                    (status === 'read' && msg.msgid === newestRead) ||
                    (status === 'sent' && msg.msgid === newest));
  });
}

/* The keyboard in the message pane: the pane itself scrolls with the arrows (reading
 * history); Enter moves into the messages, where the arrows go from one to the next,
 * Enter (or the context-menu key, or Shift+F10) opens a message's menu, and Escape goes
 * back to the pane. */
function onKey(e) {
  const box = $('messages');
  const li = e.target.closest && e.target.closest('#msg-list > .msg');
  if (e.target === box) {
    if (e.key !== 'Enter') return;
    const items = box.querySelectorAll('#msg-list > .msg');
    if (!items.length) return;
    e.preventDefault();
    items[items.length - 1].focus();
    return;
  }
  if (!li || e.target !== li) return;
  const move = (to) => {
    if (!to) return;
    e.preventDefault();
    to.focus();
    to.scrollIntoView({block: 'nearest'});
  };
  if (e.key === 'ArrowUp') move(li.previousElementSibling);
  else if (e.key === 'ArrowDown') move(li.nextElementSibling);
  else if (e.key === 'Home') move(li.parentNode.firstElementChild);
  else if (e.key === 'End') move(li.parentNode.lastElementChild);
  else if (e.key === 'Escape') { e.preventDefault(); box.focus(); }
  else if (e.key === 'Enter' || e.key === 'ContextMenu' || (e.key === 'F10' && e.shiftKey)) {
    e.preventDefault();
    showMenuBeside(li, messageOf.get(li));
  }
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
  drawStates();
}

// The friend has read further: my messages up to there say so.
function refreshReceipts(c) {
  if (c.cmd !== CMD.USER || state.open !== c) return;
  Object.keys(c.byId).forEach((k) => {
    const msg = c.byId[k];
    if (Number(msg.userid) === Number(me.id) && !msg.recalled) updateState(msg);
  });
}

// A reply's quote was clicked: the quoted message, if loaded, comes into view.
function jumpTo(msgid) {
  const li = $('msg-list').querySelector('li[data-msgid="' + Number(msgid) + '"]');
  if (!li) return toast(t('quote_missing'));
  li.scrollIntoView({block: 'center'});
  li.classList.remove('flash');
  void li.offsetWidth;  // restart the highlight
  li.classList.add('flash');
  li.focus();
}

// A message changed (recalled, edited, reacted to): drawn again where it is.
function redrawMessage(msg) {
  const old = shown.get(msg);
  if (!old || !old.isConnected) return;
  const prev = old.previousElementSibling;
  const fresh = messageElement(msg, prev ? messageOf.get(prev) : null);
  const focused = document.activeElement === old;
  old.replaceWith(fresh);
  // The one after it no longer continues a recalled message's run.
  const next = fresh.nextElementSibling;
  if (next) next.classList.toggle('cont', continues(msg, messageOf.get(next)));
  if (focused) fresh.focus();
  drawStates();
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
