/* Messages in and out: sending with a local copy shown at once, acknowledgements,
 * messages arriving from the stream, and unread counts. */
import {CMD, randomTag} from './util.js';
import {state, me, conv, keyOfMessage, remember, advanceSince, saveUnread, isFriend} from './state.js';
import * as conn from './conn.js';
import {appendMessage, updateState, renderLists, renderBadges, loadFriends,
        loadGroups} from './views.js';

// Every frame from the server but acknowledgements.
export function onFrame(frame) {
  if (frame.cmd !== CMD.USER && frame.cmd !== CMD.GROUP) return;
  if (!frame.msgid) return;
  receive(frame);
}

function receive(msg) {
  msg.msgid = Number(msg.msgid);
  advanceSince(msg.msgid);
  const c = conv(keyOfMessage(msg));
  if (!remember(c, msg)) return;  // a message seen before (history, or sent here)
  const mine = Number(msg.userid) === Number(me.id);
  if (state.open === c) {
    appendMessage(msg);
    if (document.hidden && !mine) bump(c);
  } else if (!mine) {
    bump(c);
  }
  if (c.cmd === CMD.USER && !isFriend(c.dstid)) loadFriends();
  else if (c.cmd === CMD.GROUP && !state.groups.some((g) => g.id === c.dstid)) loadGroups();
  else renderLists();
}

function bump(c) {
  state.unread[c.key] = (state.unread[c.key] || 0) + 1;
  saveUnread();
}

export function markRead(c) {
  if (state.unread[c.key]) {
    delete state.unread[c.key];
    saveUnread();
    renderBadges();
  }
}

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
  }
}
