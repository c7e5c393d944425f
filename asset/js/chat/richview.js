/* How richer messages look (docs/protocol.md, "Richer messages"): the quote above a
 * reply, the reactions under a bubble, "edited" and "forwarded" marks, a file's card,
 * the reaction picker and the forward chooser. Views only: what a click does is a
 * handler given by the caller. Every string from the network goes in as text. */
import {im, t, h, MEDIA, displayName} from './util.js';
import {userOf, titleOf} from './state.js';
import {QUICK_REACTIONS} from './rich.js';

// The picker's "more": the composer's emoji set.
const MORE_REACTIONS = ['😀', '🤣', '😊', '😍', '😘', '😎', '🤔', '😅', '😭', '😡', '😱', '🥳',
                        '🤗', '🙄', '😇', '🤩', '👎', '👏', '💪', '🤝', '👌', '✌️', '💔', '🔥',
                        '🎉', '🌹', '☕', '🍺', '🎂', '⭐', '💯', '✅'];

// A reply's quote; clicking it (or Enter on it) calls jump(msgid).
export function quoteElement(msg, jump) {
  const quote = msg.reply;
  if (!quote) return null;
  const who = displayName(userOf(quote.userid));
  const text = quote.recalled ? t('recalled') : Number(quote.media) === MEDIA.TEXT
    ? quote.content : (quote.content || '') + ' ' + mediaLabel(quote.media);
  return h('button', {type: 'button', className: 'msg-quote', dataset: {quote: String(quote.msgid)},
                      onclick: () => jump(Number(quote.msgid))}, [
    h('span', {className: 'quote-name', text: who}),
    h('span', {className: 'quote-text', text: text})
  ]);
}

function mediaLabel(media) {
  const labels = {2: 'm_news', 3: 'm_voice', 4: 'm_image', 5: 'm_redpacket', 6: 'm_emoji',
                  7: 'm_link', 8: 'm_video', 9: 'm_contact', 10: 'm_file'};
  return labels[media] ? t(labels[media]) : '';
}

// The reactions under a bubble, mine highlighted; clicking one toggles it as mine.
export function reactionsElement(msg, react) {
  const all = msg.reactions || {};
  const emojis = Object.keys(all);
  if (!emojis.length) return null;
  return h('div', {className: 'msg-reactions', 'aria-label': t('reactions')}, emojis.map((emoji) =>
    h('button', {type: 'button', className: 'reaction' + (all[emoji].mine ? ' mine' : ''),
                 'aria-pressed': all[emoji].mine ? 'true' : 'false', dataset: {emoji: emoji},
                 onclick: () => react(msg, emoji)}, [
      h('span', {text: emoji}), h('span', {className: 'reaction-count', text: String(all[emoji].count)})
    ])));
}

export function marks(msg) {
  const out = [];
  if (msg.forwarded) out.push(h('span', {className: 'msg-forwarded', text: t('forwarded')}));
  if (msg.editedat) out.push(h('span', {className: 'msg-edited', text: t('edited')}));
  return out;
}

const FILE_ICONS = {pdf: '📕', doc: '📘', docx: '📘', odt: '📘', rtf: '📘', xls: '📗', xlsx: '📗',
                    ods: '📗', csv: '📗', ppt: '📙', pptx: '📙', odp: '📙', zip: '🗜️', '7z': '🗜️',
                    gz: '🗜️', tar: '🗜️', mp3: '🎵', m4a: '🎵', wav: '🎵', ogg: '🎵', flac: '🎵',
                    aac: '🎵', opus: '🎵', mp4: '🎬', webm: '🎬', mov: '🎬', mkv: '🎬'};

export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n >= 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + ' MB';
  if (n >= 1024) return Math.round(n / 1024) + ' KB';
  return n + ' B';
}

// A file (media 10): icon, name, size and a download link; never shown inline.
export function fileCard(msg) {
  const name = msg.content || t('file');
  const ext = (name.match(/\.([A-Za-z0-9]{1,10})$/) || ['', ''])[1].toLowerCase();
  const src = im.localUrl(msg.url);
  const link = src ? src + (src.indexOf('?') >= 0 ? '&' : '?') + 'name=' + encodeURIComponent(name) : '';
  return h('div', {className: 'file-card'}, [
    h('span', {className: 'file-icon', 'aria-hidden': 'true', text: FILE_ICONS[ext] || '📄'}),
    h('div', {className: 'file-info'}, [
      h('div', {className: 'file-name', text: name}),
      h('div', {className: 'file-size', text: formatSize(msg.amount)})
    ]),
    link ? h('a', {className: 'file-download', href: link, download: name, rel: 'noopener',
                   text: t('download')}) : null
  ]);
}

/* ---------- the reaction picker ---------- */

let picker = null;

// Show the picker by (x, y); pick(emoji) when one is chosen.
export function showPicker(x, y, pick) {
  hidePicker();
  const choose = (emoji) => { hidePicker(); pick(emoji); };
  const button = (emoji) => h('button', {type: 'button', className: 'emoji', text: emoji,
                                         'aria-label': emoji, onclick: () => choose(emoji)});
  const more = h('div', {className: 'picker-more', hidden: true}, MORE_REACTIONS.map(button));
  picker = h('div', {className: 'reaction-picker', role: 'dialog', 'aria-label': t('react')}, [
    h('div', {className: 'picker-quick'}, QUICK_REACTIONS.map(button).concat([
      h('button', {type: 'button', className: 'emoji picker-toggle', text: '＋',
                   'aria-label': t('more_emoji'), onclick: () => { more.hidden = !more.hidden; }})
    ])),
    more
  ]);
  picker.addEventListener('keydown', (e) => { if (e.key === 'Escape') hidePicker(); });
  document.body.appendChild(picker);
  place(picker, x, y);
  picker.querySelector('button').focus();
}

export function hidePicker() {
  if (picker) picker.remove();
  picker = null;
}

function place(el, x, y) {
  el.style.left = Math.max(4, Math.min(x, window.innerWidth - el.offsetWidth - 4)) + 'px';
  el.style.top = Math.max(4, Math.min(y, window.innerHeight - el.offsetHeight - 4)) + 'px';
}

/* ---------- choosing where to forward ---------- */

// A dialog listing `targets` (conversations); choose(c) with the one picked.
export function chooseConversation(targets, choose) {
  const dialog = h('dialog', {className: 'forward-dialog', 'aria-label': t('forward_to')}, [
    h('h2', {className: 'forward-title', text: t('forward_to')}),
    h('ul', {className: 'list forward-list'}, targets.map((c) =>
      h('li', {}, [h('button', {type: 'button', className: 'forward-target', dataset: {conv: c.key},
                                text: titleOf(c),
                                onclick: () => { dialog.close(); dialog.remove(); choose(c); }})]))),
    h('button', {type: 'button', className: 'btn', text: t('cancel'),
                 onclick: () => { dialog.close(); dialog.remove(); }})
  ]);
  document.body.appendChild(dialog);
  dialog.addEventListener('close', () => dialog.remove());
  dialog.showModal();
}


/* ---------- editing ---------- */

// A dialog to change a text; save(text) with the new one.
export function editDialog(text, save) {
  const box = h('textarea', {className: 'edit-text', rows: '4', maxlength: '4000'});
  box.value = text;
  const close = () => { dialog.close(); };
  const dialog = h('dialog', {className: 'edit-dialog', 'aria-label': t('edit_prompt')}, [
    h('h2', {className: 'forward-title', text: t('edit_prompt')}),
    box,
    h('div', {className: 'dialog-actions'}, [
      h('button', {type: 'button', className: 'btn', text: t('cancel'), onclick: close}),
      h('button', {type: 'button', className: 'btn btn-primary edit-save', text: t('ok'),
                   onclick: () => { close(); save(box.value); }})
    ])
  ]);
  document.body.appendChild(dialog);
  dialog.addEventListener('close', () => dialog.remove());
  dialog.showModal();
  box.focus();
}
