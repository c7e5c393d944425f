/* Muting and reporting, as the person sees them (issue 22): the bell in a conversation's
 * header that mutes it (for 1 hour, 8 hours, a week or always) or unmutes it, the mark a
 * muted conversation shows beside its title, and the two questions: for how long, and
 * why a message or a person is reported. */
import {t, $} from './util.js';
import {state, isMuted, titleOf} from './state.js';
import {on} from './events.js';

// handlers: mute(c, until)
export function mountMute(handlers) {
  $('mute-btn').addEventListener('click', () => {
    const c = state.open;
    if (!c) return;
    askMuteUntil(t('mute_question', {name: titleOf(c)}), isMuted(c)).then((until) => {
      if (until !== null) handlers.mute(c, until);
    });
  });
  const drawIfOpen = (c) => { if (!c || c === state.open) drawMark(); };
  on('open', drawMark);
  on('muted', drawIfOpen);
  on('conversations', drawMark);
  document.addEventListener('imchat:lang', drawMark);
}

function drawMark() {
  const muted = !!state.open && isMuted(state.open);
  $('convo-muted').hidden = !muted;
  $('mute-btn').setAttribute('aria-pressed', muted ? 'true' : 'false');
}

/* Resolves with the time to mute until (ms since the epoch), -1 for ever, 0 to unmute
 * (offered only when `muted`), or null when the person cancels. */
export function askMuteUntil(question, muted) {
  const dialog = $('mute-dialog');
  $('mute-text').textContent = question;
  $('unmute-choice').hidden = !muted;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const chosen = dialog.returnValue;
      if (!chosen || chosen === 'cancel') return resolve(null);
      const span = Number(chosen);
      resolve(span > 0 ? Date.now() + span : span);
    }, {once: true});
    dialog.showModal();
  });
}

// Resolves with {reason, memo}, or null when the person cancels.
export function askReport(title) {
  const dialog = $('report-dialog');
  const form = $('report-form');
  form.reset();
  $('report-title').textContent = title;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (dialog.returnValue !== 'ok') return resolve(null);
      resolve({reason: form.elements.reason.value, memo: form.elements.memo.value.trim()});
    }, {once: true});
    dialog.showModal();
  });
}
