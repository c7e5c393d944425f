/* Messages in and out: sending with a local copy shown at once, acknowledgements,
 * messages arriving from the stream, and the conversation events beside them (cmd
 * 12 read positions, 13 typing, 14 recall, 15 presence). */
import {im, t, CMD, randomTag, toast} from './util.js';
import {state, me, conv, convKey, keyOfMessage, remember, advanceSince, isFriend,
        newestMsgid, markRecalled, userOf} from './state.js';
import * as conn from './conn.js';
import {appendMessage, updateState, renderLists, loadFriends, loadGroups,
        redrawMessage, refreshReceipts, showStatus} from './views.js';
import {fail} from './session.js';

// The server's IMCHAT_RECALL_SECONDS, which the page names (0: no limit): the menu
// offers recall this long after sending.
const recallMeta = document.querySelector('meta[name="imchat-recall-seconds"]');
export const RECALL_SECONDS = recallMeta ? Number(recallMeta.getAttribute('content')) || 0 : 120;
// The server passes on one typing event per 2 s per conversation; a friend's shows
// for a little longer than that.
const TYPING_EVERY_MS = 2000, TYPING_SHOWN_MS = 5000;

// Every frame from the server but acknowledgements.
export function onFrame(frame) {
  switch (frame.cmd) {
    case CMD.USER:
    case CMD.GROUP:
      if (frame.msgid) receive(frame);
      break;
    case CMD.READ: return onRead(frame);
    case CMD.TYPING: return onTyping(frame);
    case CMD.RECALL: return onRecall(frame);
    case CMD.PRESENCE: return onPresence(frame);
  }
}

function receive(msg) {
  msg.msgid = Number(msg.msgid);
  advanceSince(msg.msgid);
  const c = conv(keyOfMessage(msg));
  if (!remember(c, msg)) return;  // a message seen before (history, or sent here)
  const mine = Number(msg.userid) === Number(me.id);
  if (!mine && msg.msgid > Math.max(c.readmsgid, c.countedUpTo || 0)) {
    state.unread[c.key] = (state.unread[c.key] || 0) + 1;
  }
  if (!mine && c.cmd === CMD.USER) stopTyping(c.dstid);
  if (state.open === c) {
    appendMessage(msg);
    markRead(c);
  }
  if (c.cmd === CMD.USER && !isFriend(c.dstid)) loadFriends();
  else if (c.cmd === CMD.GROUP && !state.groups.some((g) => g.id === c.dstid)) loadGroups();
  else renderLists();
}

/* ---------- read positions (cmd 12) ---------- */

// The open conversation is read up to its newest message, on every device of mine
// and, for 1:1, for the friend's receipts. Only while the page is seen.
export function markRead(c) {
  if (document.hidden) return;
  const newest = newestMsgid(c);
  if (newest > c.readmsgid &&
      conn.sendNow({cmd: CMD.READ, target: c.cmd, dstid: c.dstid, msgid: newest})) {
    c.readmsgid = newest;
  }
  if (c.readmsgid >= newest && state.unread[c.key]) {
    state.unread[c.key] = 0;
    renderLists();
  }
}

function onRead(frame) {
  const msgid = Number(frame.msgid) || 0;
  if (Number(frame.userid) === Number(me.id)) {
    // Read on another of my devices: the count goes there too.
    const c = conv(convKey(Number(frame.target), Number(frame.dstid)));
    if (msgid <= c.readmsgid) return;
    c.readmsgid = msgid;
    if (c.last && c.last.msgid && msgid >= c.last.msgid) state.unread[c.key] = 0;
    else return loadConversations();
    renderLists();
  } else if (Number(frame.target) === CMD.USER) {
    // The friend's receipt for my messages.
    const c = conv(convKey(CMD.USER, Number(frame.userid)));
    if (msgid <= c.peerreadmsgid) return;
    c.peerreadmsgid = msgid;
    refreshReceipts(c);
  }
}

// The chat list with unread counts and read positions as the server keeps them:
// at start and after every reconnect (what happened meanwhile is in them).
export function loadConversations() {
  return im.api('/chat/conversations', {}, 'GET').then((reply) => {
    (reply.rows || []).forEach((row) => {
      const c = conv(convKey(Number(row.target), Number(row.dstid)));
      c.readmsgid = Math.max(c.readmsgid, Number(row.readmsgid) || 0);
      if (row.peerreadmsgid) c.peerreadmsgid = Math.max(c.peerreadmsgid, Number(row.peerreadmsgid));
      let last = row.last;
      // The server counted up to its last message; what reached this page since
      // (from the stream, while the reply was on its way) counts on top.
      const counted = last && last.msgid ? Number(last.msgid) : 0;
      c.countedUpTo = Math.max(c.countedUpTo || 0, counted);
      state.unread[c.key] = (Number(row.unread) || 0) + othersAfter(c, Math.max(counted, c.readmsgid));
      if (last && last.msgid) {
        last.msgid = Number(last.msgid);
        // For the list only: the message itself comes through the stream (it is after
        // `since` if this page has not seen it) or with the history, and is shown
        // then. Kept as seen here, the stream's copy would be dropped as a repeat.
        if (last.cmd === CMD.RECALL) {
          // The newest thing in the stream is a recall: it shows as such.
          last = {msgid: last.msgid, userid: last.userid, cmd: c.cmd, createat: last.createat, recalled: 1};
        }
        if (!c.last || !c.last.msgid || c.last.msgid < last.msgid) c.last = last;
      }
      refreshReceipts(c);
    });
    if (state.open) markRead(state.open);
    renderLists();
  }, fail);
}

function othersAfter(c, msgid) {
  return Object.keys(c.byId).filter((k) => Number(k) > msgid &&
    Number(c.byId[k].userid) !== Number(me.id)).length;
}

/* ---------- typing (cmd 13) ---------- */

let typingSentAt = 0, typingSentTo = 0;
// Called as I type in a 1:1 conversation; at most one event every 2 s.
export function typing() {
  const c = state.open;
  if (!c || c.cmd !== CMD.USER) return;
  const now = Date.now();
  if (typingSentTo === c.dstid && now - typingSentAt < TYPING_EVERY_MS) return;
  if (conn.sendNow({cmd: CMD.TYPING, dstid: c.dstid})) {
    typingSentAt = now;
    typingSentTo = c.dstid;
  }
}

const typingTimers = {};
function onTyping(frame) {
  const who = Number(frame.userid);
  clearTimeout(typingTimers[who]);
  typingTimers[who] = setTimeout(() => stopTyping(who), TYPING_SHOWN_MS);
  showStatus();
}

function stopTyping(who) {
  if (!typingTimers[who]) return;
  clearTimeout(typingTimers[who]);
  delete typingTimers[who];
  showStatus();
}

export function isTyping(userId) { return !!typingTimers[userId]; }

/* ---------- recall (cmd 14) ---------- */

export function canRecall(msg) {
  return Number(msg.userid) === Number(me.id) && !!msg.msgid && !msg.recalled &&
    (!RECALL_SECONDS || Date.now() - Number(msg.createat || msg.localTime) < RECALL_SECONDS * 1000);
}

// Take back a message of mine: an acknowledged, stored event like a message.
export function recall(msg) {
  const c = conv(keyOfMessage(msg));
  state.localSeq += 1;
  const id = 'r' + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
  conn.send({id: id, cmd: CMD.RECALL, msgid: msg.msgid}, (ack) => {
    if (ack.code === 0) {
      if (ack.msgid) advanceSince(Number(ack.msgid));
      applyRecall(c, msg.msgid);
    } else {
      toast(ack.msg || t('recall_too_late', {s: RECALL_SECONDS}));
    }
  });
}

function onRecall(frame) {
  // The event has its own msgid in the stream; `recalledmsgid` names the message
  // (a server that sends only `msgid` means the recalled one).
  const target = Number(frame.recalledmsgid || frame.msgid);
  if (frame.recalledmsgid) advanceSince(Number(frame.msgid));
  const cmd = Number(frame.target) === CMD.GROUP ? CMD.GROUP : CMD.USER;
  const c = conv(keyOfMessage({cmd: cmd, userid: frame.userid, dstid: frame.dstid}));
  applyRecall(c, target);
}

function applyRecall(c, msgid) {
  const msg = c.byId[msgid];
  if (msg) {
    markRecalled(msg);
    redrawMessage(msg);
  }
  if (c.last && c.last.msgid === msgid) markRecalled(c.last);
  renderLists();
}

/* ---------- presence (cmd 15) ---------- */

function onPresence(frame) {
  const id = Number(frame.userid);
  const online = frame.online ? 1 : 0;
  state.friends.forEach((f) => { if (f.id === id) f.online = online; });
  if (state.users[id]) state.users[id].online = online;
  else userOf(id);
  renderLists();
  showStatus();
}

/* ---------- sending ---------- */

// Show a message in the open conversation as sending at once; the connection writes
// it now or when it opens.
export function send(fields) {
  const c = state.open;
  if (!c) return;
  state.localSeq += 1;
  // Unique across this person's devices and page loads: the server takes it as the
  // message's idempotency key.
  const id = 'c' + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
  const frame = Object.assign({id: id, cmd: c.cmd, dstid: c.dstid}, fields);
  const msg = Object.assign({}, frame, {userid: me.id, localTime: Date.now(), state: 'sending'});
  c.pending.push(msg);
  appendMessage(msg);
  conn.send(frame, (ack) => onAck(c, msg, ack));
}

function onAck(c, msg, frame) {
  if (frame.code === 0 && frame.msgid) {
    c.pending.splice(c.pending.indexOf(msg), 1);
    msg.msgid = Number(frame.msgid);
    msg.createat = frame.createat || msg.localTime;
    msg.state = 'sent';
    if (!remember(c, msg)) {
      // Already shown from the stream: drop the local copy.
      if (msg.el) msg.el.remove();
      return;
    }
    updateState(msg);
    renderLists();
  } else {
    msg.state = 'failed';
    msg.error = frame.msg || '';
    updateState(msg);
    // Refused: perhaps no longer friends or a member; the lists learn it.
    if (c.cmd === CMD.USER) loadFriends();
    else loadGroups();
  }
}
