/* Message search (/chat/search): a box over the Chats list searching every
 * conversation, and one in each conversation searching it alone. A result shows its
 * conversation, sender, time and text with the matched words marked (text nodes and
 * <mark> elements, never HTML); choosing it opens the conversation at that message
 * (/chat/history `around`), marked. More results load as the list is scrolled.
 *
 * A view: mountSearch(handlers), called once by main.js, adds its own elements to the
 * page; what it does goes through the handlers. */
import {im, h, $, formatTime, displayName} from './util.js';
import {state, me, conv, convKey, userOf, titleOf} from './state.js';
import {summary} from './bubbles.js';
import {on} from './events.js';

const PAGE = 30;
// handlers: search(fields) -> rows, openAt(key, msgid) -> promise, fail(error)
let handlers = null;
// Typing pauses this long before a search is sent.
const TYPING_PAUSE_MS = 250;
const STRINGS = {
  zh: {placeholder: '搜索聊天记录', here: '在此对话中搜索', none: '没有找到相关消息',
       searching: '正在搜索…', close: '关闭搜索', search: '搜索'},
  en: {placeholder: 'Search messages', here: 'Search this conversation', none: 'No messages found',
       searching: 'Searching…', close: 'Close search', search: 'Search'}
};
// What a query is cut into, as the server cuts it (imchat/util/segment.py): runs of
// CJK characters, and words of letters and digits.
const CJK = '\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff';
const TERM = new RegExp('[' + CJK + ']+|[^\\s\\p{P}\\p{S}_' + CJK + ']+', 'gu');

function s(key) { return (STRINGS[im.lang()] || STRINGS.en)[key]; }

export function queryTerms(q) {
  return Array.from(new Set((q.toLowerCase().match(TERM) || [])));
}

/* `text` as text nodes, with every occurrence of a term in a <mark>. */
export function highlighted(text, terms) {
  let parts = [];
  let lower = text.toLowerCase();
  let at = 0;
  while (at < text.length && terms.length) {
    let best = -1, len = 0;
    terms.forEach(function (term) {
      let i = lower.indexOf(term, at);
      if (i !== -1 && (best === -1 || i < best || (i === best && term.length > len))) {
        best = i; len = term.length;
      }
    });
    if (best === -1) break;
    if (best > at) parts.push(document.createTextNode(text.slice(at, best)));
    parts.push(h('mark', {className: 'search-hit', text: text.slice(best, best + len)}));
    at = best + len;
  }
  if (at < text.length) parts.push(document.createTextNode(text.slice(at)));
  return parts;
}

/* One search box and its results; `scope()` gives {target, dstid} or null (all). */
function searchPanel(id, placeholder, scope) {
  let input = h('input', {type: 'search', id: id + '-input', className: 'search-input',
                          placeholder: placeholder, 'aria-label': placeholder,
                          autocomplete: 'off', maxlength: '100'});
  let results = h('ul', {className: 'search-results', id: id + '-results', hidden: true});
  let note = h('div', {className: 'search-note', id: id + '-note', hidden: true});
  let panel = h('div', {className: 'search-panel', id: id}, [
    h('form', {className: 'search-form', role: 'search'}, [input]), note, results]);
  let query = null;
  let timer = null;

  function reset() {
    query = null;
    results.textContent = '';
    results.hidden = true;
    note.hidden = true;
  }

  function run(more) {
    let q = input.value.trim();
    if (!more) {
      reset();
      if (!queryTerms(q).length) return;
      query = {q: q, terms: queryTerms(q), before: null, done: false, loading: false};
    }
    let current = query;
    if (!current || current.done || current.loading) return;
    current.loading = true;
    note.hidden = false;
    note.textContent = s('searching');
    let fields = {q: current.q, limit: PAGE};
    let where = scope();
    if (where) { fields.target = where.target; fields.dstid = where.dstid; }
    if (current.before) fields.before = current.before;
    handlers.search(fields).then(function (rows) {
      if (query !== current) return;
      current.loading = false;
      current.done = rows.length < PAGE;
      if (rows.length) current.before = rows[rows.length - 1].msgid;
      rows.forEach(function (row) { results.appendChild(resultItem(row, current.terms)); });
      results.hidden = !results.children.length;
      note.hidden = !!results.children.length;
      note.textContent = results.children.length ? '' : s('none');
    }, function (error) {
      current.loading = false;
      note.hidden = true;
      handlers.fail(error);
    });
  }

  input.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(function () { run(false); }, TYPING_PAUSE_MS);
  });
  panel.querySelector('form').addEventListener('submit', function (e) {
    e.preventDefault();
    clearTimeout(timer);
    run(false);
  });
  results.addEventListener('scroll', function () {
    if (results.scrollHeight - results.scrollTop - results.clientHeight < 60) run(true);
  });
  return {panel: panel, input: input, reset: reset, more: function () { run(true); }};
}

function resultItem(row, terms) {
  let key = convKey(row.target, row.peer);
  let c = conv(key);
  let sender = Number(row.userid) === Number(me.id) ? me : userOf(row.userid);
  let text = summary(row);
  let item = h('li', {className: 'search-result', tabindex: '0', role: 'button',
                      dataset: {msgid: String(row.msgid), conv: key}}, [
    h('div', {className: 'search-result-head'}, [
      h('span', {className: 'search-result-conv', text: titleOf(c)}),
      h('time', {className: 'search-result-time', text: formatTime(row.createat)})
    ]),
    h('div', {className: 'search-result-sender', text: displayName(sender)}),
    h('div', {className: 'search-result-text'}, highlighted(text, terms))
  ]);
  let open = function () { openAt(key, row.msgid, terms); };
  item.addEventListener('click', open);
  item.addEventListener('keydown', function (e) { if (e.key === 'Enter') open(); });
  return item;
}

/* Open the conversation `key` at message `msgid`, its neighbours loaded, the terms marked. */
function openAt(key, msgid, terms) {
  // Set first: the conversation opening must not close the search it came from.
  shown = {conv: conv(key), msgid: msgid, terms: terms};
  return handlers.openAt(key, msgid).then(function () {
    let el = markShown();
    if (el) el.scrollIntoView({block: 'center'});
  }, handlers.fail);
}

// The message opened from a search, kept marked while its conversation is open: the
// conversation view draws its messages again at times (a read, a recall).
let shown = null;

function markShown() {
  if (!shown || state.open !== shown.conv) return null;
  let el = document.querySelector('#msg-list .msg[data-msgid="' + Number(shown.msgid) + '"]');
  if (el && !el.classList.contains('search-target')) {
    el.classList.add('search-target');
    markTerms(el.querySelector('.bubble'), shown.terms);
  }
  return el;
}

/* Wrap the terms found in the text nodes under `root` in <mark> elements. */
function markTerms(root, terms) {
  if (!root) return;
  let walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  nodes.forEach(function (node) {
    let parts = highlighted(node.nodeValue, terms);
    if (parts.length > 1) node.replaceWith.apply(node, parts);
  });
}

export function mountSearch(given) {
  handlers = given;
  let all = searchPanel('search-all', s('placeholder'), function () { return null; });
  let chats = $('tab-chats');
  chats.insertBefore(all.panel, chats.firstChild);

  let here = searchPanel('search-here', s('here'), function () {
    return state.open ? {target: state.open.cmd, dstid: state.open.dstid} : null;
  });
  here.panel.hidden = true;
  here.panel.classList.add('search-in-convo');
  let messages = $('messages');
  messages.parentNode.insertBefore(here.panel, messages);
  let toggle = h('button', {type: 'button', className: 'icon-btn', id: 'search-here-btn',
                            title: s('here'), 'aria-label': s('here'), text: '🔍'});
  toggle.addEventListener('click', function () {
    here.panel.hidden = !here.panel.hidden;
    here.reset();
    here.input.value = '';
    if (!here.panel.hidden) here.input.focus();
  });
  $('members-btn').parentNode.insertBefore(toggle, $('profile-btn'));
  new MutationObserver(markShown).observe($('msg-list'), {childList: true});
  // Another conversation opened starts without the previous one's search.
  let closeHere = function () { here.panel.hidden = true; here.reset(); here.input.value = ''; };
  on('open', function (c) { if (!(shown && c === shown.conv)) closeHere(); });
}
