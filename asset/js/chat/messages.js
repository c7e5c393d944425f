/* Messages in and out: sending with a local copy shown at once, acknowledgements,
 * messages arriving from the stream, recall (cmd 14) and pages of history. Every frame
 * from the server comes in here (`onFrame`) and goes to its module. */
import {t, CMD, randomTag, ackText} from './util.js';
import * as conn from './conn.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, me, conv, keyOfMessage, remember, advanceSince, isFriend, oldestMsgid,
        markRecalled, touched} from './state.js';
import {markRead, onRead} from './reads.js';
import {onTyping, stopTyping, onPresence} from './presence.js';
import {loadFriends, loadGroups} from './contacts.js';
import {onEdit, onReaction, countMention} from './rich.js';
import {onContact} from './requests.js';

// The server's IMCHAT_RECALL_SECONDS, which the page names (0: no limit): the menu
// offers recall this long after sending.
const recallMeta = document.querySelector('meta[name="imchat-recall-seconds"]');
export const RECALL_SECONDS = recallMeta ? Number(recallMeta.getAttribute('content')) || 0 : 120;
const HISTORY_PAGE = 30;
const AROUND_PAGE = 40;

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
    case CMD.EDIT: return onEdit(frame);
    case CMD.REACTION: return onReaction(frame);
    case CMD.PRESENCE: return onPresence(frame);
    case CMD.CONTACT: return onContact(frame);
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
  countMention(c, msg);
  emit('message', {c: c, msg: msg});
  if (state.open === c) markRead(c);
  touched(c);
  // From someone not (yet) in my lists: they are, now.
  if (c.cmd === CMD.USER && !isFriend(c.dstid)) loadFriends();
  else if (c.cmd === CMD.GROUP && !state.groups.some((g) => g.id === c.dstid)) loadGroups();
}

/* ---------- sending ---------- */

// Show a message in the open conversation as sending at once; the connection writes
// it now or when it opens.
export function send(fields) {
  if (state.open) sendTo(state.open, fields);
}

// The same, to any conversation of mine (a forward goes to another than the open one);
// `shown`: what the local copy shows besides the frame's fields (a forward's body).
export function sendTo(c, fields, shown) {
  state.localSeq += 1;
  // Unique across this person's devices and page loads: the server takes it as the
  // message's idempotency key.
  const id = 'c' + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
  const frame = Object.assign({id: id, cmd: c.cmd, dstid: c.dstid}, fields);
  const msg = Object.assign({}, frame, shown || {},
                            {userid: me.id, localTime: Date.now(), state: 'sending'});
  c.pending.push(msg);
  emit('message', {c: c, msg: msg});
  conn.send(frame, (ack) => onAck(c, msg, ack));
}

function onAck(c, msg, frame) {
  if (frame.code === 0 && frame.msgid) {
    c.pending.splice(c.pending.indexOf(msg), 1);
    msg.msgid = Number(frame.msgid);
    msg.createat = frame.createat || msg.localTime;
    msg.state = 'sent';
    // Every message stored before this one has been written to this connection
    // already (acks follow their batch's fan-out): the next connection's `since` may
    // start here. Without it a page that only sent resumed at the server's resume
    // point, which another device of mine may have moved past a message of mine it
    // sent meanwhile: that message never reached this page.
    advanceSince(msg.msgid);
    // Already shown from the stream: the local copy goes.
    if (!remember(c, msg)) return emit('message-dropped', msg);
    emit('message-state', msg);
    touched(c);
  } else {
    msg.state = 'failed';
    msg.error = ackText(frame);
    emit('message-state', msg);
    // Refused: perhaps no longer friends or a member; the lists learn it.
    if (c.cmd === CMD.USER) loadFriends();
    else loadGroups();
  }
}

/* ---------- recall (cmd 14) ---------- */

export function canRecall(msg) {
  return Number(msg.userid) === Number(me.id) && !!msg.msgid && !msg.recalled &&
    (!RECALL_SECONDS || Date.now() - Number(msg.createat || msg.localTime) < RECALL_SECONDS * 1000);
}

// Take back a message of mine: an acknowledged, stored event like a message.
export function recall(msg) {
  if (!canRecall(msg)) return emit('notice', t('recall_too_late', {s: RECALL_SECONDS}));
  const c = conv(keyOfMessage(msg));
  state.localSeq += 1;
  const id = 'r' + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
  conn.send({id: id, cmd: CMD.RECALL, msgid: msg.msgid}, (ack) => {
    if (ack.code === 0) {
      if (ack.msgid) advanceSince(Number(ack.msgid));
      applyRecall(c, msg.msgid);
    } else {
      emit('notice', ack.reason || ack.msg ? ackText(ack) : t('recall_too_late', {s: RECALL_SECONDS}));
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
    emit('recalled', msg);
  }
  if (c.last && c.last.msgid === msgid) markRecalled(c.last);
  touched(c);
}

/* ---------- history ---------- */

// The newest page of a conversation's history, or (`older`) the page before what it
// holds. 'history' says when it starts, when it failed, and when it `arrived`.
export function loadHistory(c, older) {
  if (c.loading || (older && !c.hasOlder)) return;
  c.loading = true;
  emit('history', {c: c, older: older});
  const fields = {cmd: c.cmd, dstid: c.dstid, limit: HISTORY_PAGE};
  if (older) fields.before = oldestMsgid(c);
  api.loadHistory(fields).then((rows) => {
    rows.forEach((m) => { if (m.cmd === c.cmd) remember(c, m); });
    c.loading = false;
    c.historyLoaded = true;
    c.hasOlder = rows.length >= HISTORY_PAGE;
    emit('history', {c: c, older: older, arrived: true});
    if (state.open === c) markRead(c);
    touched(c);
  }, (error) => {
    c.loading = false;
    emit('history', {c: c, older: older});
    api.fail(error);
  });
}

// The messages around `msgid` (a search result), and the newest page if the
// conversation has none yet, so that opening it shows both; resolves when they are kept.
export function loadAround(c, msgid) {
  const pages = [api.loadHistory({cmd: c.cmd, dstid: c.dstid, around: msgid, limit: AROUND_PAGE})];
  if (!c.historyLoaded) pages.push(api.loadHistory({cmd: c.cmd, dstid: c.dstid, limit: HISTORY_PAGE}));
  return Promise.all(pages).then((replies) => {
    replies.forEach((rows) => rows.forEach((m) => { if (m.cmd === c.cmd) remember(c, m); }));
    c.historyLoaded = true;
    c.hasOlder = true;
    emit('history', {c: c, older: false, arrived: true});
    touched(c);
  });
}
