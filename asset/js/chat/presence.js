/* Who is typing to me (cmd 13, both ways) and who is online (cmd 15): passing signals,
 * never stored. */
import {CMD} from './util.js';
import * as conn from './conn.js';
import {emit} from './events.js';
import {state, userOf} from './state.js';

// The server passes on one typing event per 2 s per conversation; a friend's shows
// for a little longer than that.
const TYPING_EVERY_MS = 2000, TYPING_SHOWN_MS = 5000;

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
export function onTyping(frame) {
  const who = Number(frame.userid);
  clearTimeout(typingTimers[who]);
  typingTimers[who] = setTimeout(() => stopTyping(who), TYPING_SHOWN_MS);
  emit('typing', who);
}

// A message from them ends their typing at once.
export function stopTyping(who) {
  if (!typingTimers[who]) return;
  clearTimeout(typingTimers[who]);
  delete typingTimers[who];
  emit('typing', who);
}

export function isTyping(userId) { return !!typingTimers[userId]; }

export function onPresence(frame) {
  const id = Number(frame.userid);
  const online = frame.online ? 1 : 0;
  state.friends.forEach((f) => { if (f.id === id) f.online = online; });
  if (state.users[id]) state.users[id].online = online;
  else userOf(id);
  emit('presence', id);
}
