/* Read positions and unread counts (cmd 12 and /chat/conversations): the server keeps
 * both, so every device of mine counts the same, and a 1:1 friend's position becomes
 * the "Read" under my messages. */
import {CMD} from './util.js';
import * as conn from './conn.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, me, conv, convKey, newestMsgid, setUnread, touchedAll} from './state.js';
import {setMentioned} from './rich.js';

// The open conversation is read up to its newest message, on every device of mine
// and, for 1:1, for the friend's receipts. Only while the page is seen.
export function markRead(c) {
  if (document.hidden) return;
  const newest = newestMsgid(c);
  if (newest > c.readmsgid &&
      conn.sendNow({cmd: CMD.READ, target: c.cmd, dstid: c.dstid, msgid: newest})) {
    c.readmsgid = newest;
  }
  if (c.readmsgid >= newest) {
    setUnread(c, 0);
    setMentioned(c, 0);
  }
}

export function onRead(frame) {
  const msgid = Number(frame.msgid) || 0;
  if (Number(frame.userid) === Number(me.id)) {
    // Read on another of my devices: the count goes there too.
    const c = conv(convKey(Number(frame.target), Number(frame.dstid)));
    if (msgid <= c.readmsgid) return;
    c.readmsgid = msgid;
    if (c.last && c.last.msgid && msgid >= c.last.msgid) {
      setUnread(c, 0);
      setMentioned(c, 0);
    } else {
      loadConversations();
    }
  } else if (Number(frame.target) === CMD.USER) {
    // The friend's receipt for my messages.
    const c = conv(convKey(CMD.USER, Number(frame.userid)));
    if (msgid <= c.peerreadmsgid) return;
    c.peerreadmsgid = msgid;
    emit('receipts', c);
  }
}

// The chat list with unread counts and read positions as the server keeps them:
// at start and after every reconnect (what happened meanwhile is in them).
export function loadConversations() {
  return api.loadConversations().then((rows) => {
    rows.forEach((row) => {
      const c = conv(convKey(Number(row.target), Number(row.dstid)));
      c.readmsgid = Math.max(c.readmsgid, Number(row.readmsgid) || 0);
      if (row.peerreadmsgid) c.peerreadmsgid = Math.max(c.peerreadmsgid, Number(row.peerreadmsgid));
      let last = row.last;
      // The server counted up to its last message; what reached this page since
      // (from the stream, while the reply was on its way) counts on top.
      const counted = last && last.msgid ? Number(last.msgid) : 0;
      c.countedUpTo = Math.max(c.countedUpTo || 0, counted);
      state.unread[c.key] = (Number(row.unread) || 0) + othersAfter(c, Math.max(counted, c.readmsgid));
      setMentioned(c, Number(row.mentioned) || 0);
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
      emit('receipts', c);
    });
    if (state.open) markRead(state.open);
    touchedAll();
  }, api.fail);
}

function othersAfter(c, msgid) {
  return Object.keys(c.byId).filter((k) => Number(k) > msgid &&
    Number(c.byId[k].userid) !== Number(me.id)).length;
}
