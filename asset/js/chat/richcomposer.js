/* The composer's richer parts: the paper-clip that sends any file, the bar naming the
 * message a reply answers (with a way out), and the member suggestions that typing
 * `@` brings up in a group. Views only: sending, replying and mentioning are handlers
 * from main.js; what the draft holds comes from the 'draft' event. */
import {t, h, $, CMD, avatar, displayName} from './util.js';
import {on} from './events.js';
import {state, me, userOf, groupOf} from './state.js';
import {summary} from './bubbles.js';

const PAPERCLIP_PATH = 'M20 11.5l-8.2 8.2a5 5 0 0 1-7.1-7.1l8.5-8.5a3.4 3.4 0 0 1 4.8 4.8l-8.4 8.4a1.7 1.7 0 0 1-2.4-2.4l7.7-7.7';
const SVG_NS = 'http://www.w3.org/2000/svg';

// The paper-clip icon, built as nodes (scripts never write HTML).
function paperclip() {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'ico');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', PAPERCLIP_PATH);
  svg.appendChild(path);
  return svg;
}
const SUGGESTIONS_MAX = 8;

let handlers = null;
let members = [];          // the open group's members, for suggestions
let suggestions = null;    // the list element while it shows
let chosen = 0;

/* handlers: sendFile(file), cancelReply(c), mention(c, id, name), members(c) -> promise of rows */
export function mountRichComposer(given) {
  handlers = given;
  const input = $('text-input');
  const clip = h('label', {className: 'icon-btn file-btn', id: 'attach-btn', title: t('attach_file'),
                           'data-i18n-title': 'attach_file'});
  clip.appendChild(paperclip());
  const fileInput = h('input', {type: 'file', id: 'file-input', 'aria-label': t('attach_file')});
  fileInput.addEventListener('change', function () {
    if (this.files[0]) handlers.sendFile(this.files[0]);
    this.value = '';
  });
  clip.appendChild(fileInput);
  $('voice-btn').after(clip);

  const bar = h('div', {className: 'reply-bar', id: 'reply-bar', hidden: true}, [
    h('span', {className: 'reply-text', id: 'reply-text'}),
    h('button', {type: 'button', className: 'icon-btn', id: 'reply-cancel', 'aria-label': t('cancel'),
                 text: '×', onclick: () => { if (state.open) handlers.cancelReply(state.open); }})
  ]);
  $('composer').before(bar);

  input.addEventListener('input', suggest);
  input.addEventListener('keydown', onKey, true);  // before the composer's Enter sends
  input.addEventListener('blur', () => setTimeout(hideSuggestions, 150));
  on('draft', drawReply);
  on('open', (c) => {
    hideSuggestions();
    members = [];
    drawReply(c);
    if (c && c.cmd === CMD.GROUP) {
      handlers.members(c).then((rows) => {
        if (state.open !== c) return;
        members = rows;
        // An `@` typed before the list came: its suggestions show now.
        if (document.activeElement === $('text-input')) suggest();
      }, () => {});
    }
  });
}

function drawReply(c) {
  const bar = $('reply-bar');
  const msg = c && c === state.open && c.draft && c.draft.reply;
  bar.hidden = !msg;
  if (!msg) return;
  const who = Number(msg.userid) === Number(me.id) ? me : userOf(msg.userid);
  $('reply-text').textContent = t('replying_to', {name: displayName(who)}) + summary(msg);
  $('text-input').focus();
}

// `@` and what follows it, just before the caret, in a group.
function partial() {
  const input = $('text-input');
  if (!state.open || state.open.cmd !== CMD.GROUP) return null;
  const before = input.value.slice(0, input.selectionStart);
  const match = before.match(/(^|\s)@([^\s@]{0,20})$/);
  return match ? match[2] : null;
}

function suggest() {
  const typed = partial();
  if (typed === null) return hideSuggestions();
  const lower = typed.toLowerCase();
  const group = groupOf(state.open.dstid);
  const options = members.filter((m) => Number(m.id) !== Number(me.id) &&
    displayName(m).toLowerCase().indexOf(lower) >= 0).slice(0, SUGGESTIONS_MAX);
  if (group && Number(group.ownerid) === Number(me.id) && t('mention_everyone').toLowerCase().indexOf(lower) >= 0) {
    options.unshift({id: -1, nickname: t('mention_everyone')});
  }
  if (!options.length) return hideSuggestions();
  hideSuggestions();
  chosen = 0;
  suggestions = h('ul', {className: 'mention-list', id: 'mention-list', role: 'listbox'},
    options.map((m, i) => h('li', {role: 'option', 'aria-selected': i === 0 ? 'true' : 'false',
                                   dataset: {id: String(m.id)},
                                   onmousedown: (e) => { e.preventDefault(); pick(m); }}, [
      m.id === -1 ? null : avatar(m), h('span', {text: displayName(m)})
    ])));
  suggestions.options = options;
  $('composer').before(suggestions);
}

function onKey(e) {
  if (!suggestions) return;
  const count = suggestions.options.length;
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    chosen = (chosen + (e.key === 'ArrowDown' ? 1 : count - 1)) % count;
    Array.from(suggestions.children).forEach((li, i) => li.setAttribute('aria-selected', String(i === chosen)));
  } else if (e.key === 'Enter' || e.key === 'Tab') {
    pick(suggestions.options[chosen]);
  } else if (e.key === 'Escape') {
    hideSuggestions();
  } else {
    return;
  }
  e.preventDefault();
  e.stopImmediatePropagation();
}

// Put `@name ` in place of what was typed after the `@`.
function pick(member) {
  const input = $('text-input');
  const typed = partial() || '';
  const at = input.selectionStart;
  const name = displayName(member);
  input.value = input.value.slice(0, at - typed.length) + name + ' ' + input.value.slice(at);
  const caret = at - typed.length + name.length + 1;
  input.setSelectionRange(caret, caret);
  handlers.mention(state.open, member.id, name);
  hideSuggestions();
  input.focus();
}

function hideSuggestions() {
  if (suggestions) suggestions.remove();
  suggestions = null;
}
