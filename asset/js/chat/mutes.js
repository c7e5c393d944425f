/* Muting a conversation (issue 22): for a while or for ever, or no longer. A muted
 * conversation still counts its unread messages on its row, but not in the total
 * (state.js totalUnread), and makes no sound (notify.js). */
import {t} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';
import {conv, convKey, touched} from './state.js';

// `until`: ms since the epoch, -1 for ever, 0 to unmute. Resolves true once done.
export function muteConversation(c, until) {
  return api.mute(c, until).then(() => {
    c.muteuntil = until;
    emit('muted', c);
    touched(c);
    emit('notice', t(until ? 'muted_done' : 'unmuted_done'));
    return true;
  }, (error) => {
    api.fail(error);
    return false;
  });
}

// My mute set on another device of mine (cmd 17 `mute`): this page follows it.
export function onMuteElsewhere(frame) {
  const c = conv(convKey(Number(frame.target), Number(frame.dstid)));
  c.muteuntil = Number(frame.until) || 0;
  emit('muted', c);
  touched(c);
}
