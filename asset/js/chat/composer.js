/* Where messages are written: the text box (Enter sends, it grows with the text), the
 * emoji panel, the image and voice buttons, the recording and upload bars; and the
 * image viewer a picture opens in. */
import {h, $} from './util.js';
import {on} from './events.js';
import {draftOf} from './state.js';
import {closeLightbox} from './bubbles.js';

const EMOJI = ['😀', '😂', '🤣', '😊', '😍', '😘', '😎', '🤔', '😅', '😭', '😡', '😱',
               '😴', '🥳', '🤗', '🙄', '😇', '🤩', '👍', '👎', '👏', '🙏', '💪', '🤝',
               '👌', '✌️', '❤️', '💔', '🔥', '🎉', '🌹', '☕', '🍺', '🍉', '🎂', '⭐',
               '☀️', '🌙', '💯', '✅'];

/* handlers: sendText(text), sendEmoji(emoji), typing(), sendImage(file),
 * startRecording(), stopRecording(cancel), saveDraft(c, text) */
export function mountComposer(handlers) {
  const input = $('text-input');
  const panel = $('emoji-panel');
  // The conversation the box's text belongs to: each has its own draft.
  let draftFor = null;
  const sendText = () => {
    const text = input.value;
    if (!text.trim()) return;
    handlers.sendText(text);
    input.value = '';
    if (draftFor) handlers.saveDraft(draftFor, '');
    autosize();
    input.focus();
  };
  EMOJI.forEach((e) => {
    panel.appendChild(h('button', {type: 'button', className: 'emoji', text: e, 'aria-label': e,
                                   onclick: () => { handlers.sendEmoji(e); panel.hidden = true; }}));
  });
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); sendText(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
  });
  input.addEventListener('input', () => {
    autosize();
    if (draftFor) handlers.saveDraft(draftFor, input.value);
    if (input.value) handlers.typing();
  });
  $('emoji-btn').addEventListener('click', () => { panel.hidden = !panel.hidden; });
  $('image-input').addEventListener('change', function () {
    handlers.sendImage(this.files[0]);
    this.value = '';
  });
  $('voice-btn').addEventListener('click', handlers.startRecording);
  $('rec-stop').addEventListener('click', () => handlers.stopRecording(false));
  $('rec-cancel').addEventListener('click', () => handlers.stopRecording(true));
  $('lightbox').addEventListener('click', closeLightbox);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    closeLightbox();
    panel.hidden = true;
  });
  on('open', (c) => {
    if (draftFor && draftFor !== c) handlers.saveDraft(draftFor, input.value);
    draftFor = c;
    if (!c) return;
    panel.hidden = true;
    input.value = draftOf(c);
    autosize();
  });
  // A conversation that left the lists takes its draft with it.
  on('forgotten', (c) => { handlers.saveDraft(c, ''); if (draftFor === c) input.value = ''; });
  on('recording', drawRecorder);
  on('upload', drawUpload);
}

function autosize() {
  const input = $('text-input');
  input.style.height = 'auto';
  input.style.height = Math.min(120, input.scrollHeight) + 'px';
}

// {seconds} while recording, null once it ends.
function drawRecorder(recording) {
  $('recorder').hidden = !recording;
  $('composer').hidden = !!recording;
  if (recording) {
    $('emoji-panel').hidden = true;
    $('rec-time').textContent = recording.seconds + '″';
  }
}

// A percentage while a file goes up, null once it is done.
function drawUpload(pct) {
  $('upload-bar').hidden = pct === null;
  if (pct === null) return;
  $('upload-progress').value = pct;
  $('upload-pct').textContent = pct + '%';
}
