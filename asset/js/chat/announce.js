/* New messages said to screen readers, politely, through one aria-live region: what
 * arrives within a moment is said once ("3 new messages in Hikers"), so a busy group
 * does not talk over everything else. My own messages are not announced. */
import {t, $, displayName} from './util.js';
import {me, userOf, titleOf} from './state.js';
import {summary} from './bubbles.js';
import {on} from './events.js';

const GATHER_MS = 1500;
let waiting = [];
let timer = null;

export function mountAnnouncer() {
  on('message', (detail) => {
    const msg = detail.msg;
    if (!msg.msgid || Number(msg.userid) === Number(me.id)) return;
    waiting.push(detail);
    if (!timer) timer = setTimeout(say, GATHER_MS);
  });
}

function say() {
  timer = null;
  const byConv = new Map();
  waiting.forEach((d) => {
    if (!byConv.has(d.c)) byConv.set(d.c, []);
    byConv.get(d.c).push(d.msg);
  });
  waiting = [];
  const parts = [];
  byConv.forEach((msgs, c) => {
    if (msgs.length === 1) {
      const msg = msgs[0];
      parts.push(t('new_message_from', {name: displayName(userOf(msg.userid)),
                                        text: summary(msg).slice(0, 140)}));
    } else {
      parts.push(t('new_messages_in', {n: msgs.length, title: titleOf(c)}));
    }
  });
  $('announcer').textContent = parts.join('. ');
}
