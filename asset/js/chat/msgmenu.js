/* A message's menu: Reply, React, Edit (my text, within the limit), Forward, Copy,
 * Recall (mine, within its limit) and Report (someone else's), on a right click, a long
 * press on a touch screen, or from the keyboard (the context-menu key, Shift+F10 or Enter on a focused message;
 * arrows move between the items). What each item does is a handler from main.js. */
import {t, h, $} from './util.js';
import {canRecall} from './messages.js';
import {canEdit} from './rich.js';
import {me} from './state.js';

const LONG_PRESS_MS = 550;
let menuFor = null;
let actions = null;

// Each item: [key, label key, shown for msg?]
const ITEMS = [
  ['reply', 'reply', (msg) => !!msg.msgid && !msg.recalled],
  ['react', 'react', (msg) => !!msg.msgid && !msg.recalled],
  ['edit', 'edit', canEdit],
  ['forward', 'forward', (msg) => !!msg.msgid && !msg.recalled],
  ['copy', 'copy', (msg) => !msg.recalled && !!(msg.content || msg.url)],
  ['recall', 'recall', canRecall],
  ['report', 'report', (msg) => !!msg.msgid && !msg.recalled && Number(msg.userid) !== Number(me.id)]
];

// given: reply(msg), react(msg, x, y), edit(msg), forward(msg), copy(msg), recall(msg),
// report(msg)
export function mountMenu(given) {
  actions = given;
  const menu = $('msg-menu');
  menu.textContent = '';
  ITEMS.forEach(([key, label]) => {
    menu.appendChild(h('li', {role: 'none'}, [
      h('button', {type: 'button', role: 'menuitem', id: key + '-btn', dataset: {action: key},
                   'data-i18n': label, text: t(label), onclick: () => choose(key)})
    ]));
  });
  document.addEventListener('click', (e) => {
    if (!menu.contains(e.target)) hideMenu();
  });
  $('messages').addEventListener('scroll', hideMenu, {passive: true});
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') hideMenu(); });
  menu.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    e.preventDefault();
    const shown = Array.from(menu.querySelectorAll('button')).filter((b) => !b.parentNode.hidden);
    const i = shown.indexOf(document.activeElement);
    shown[(i + (e.key === 'ArrowDown' ? 1 : shown.length - 1)) % shown.length].focus();
  });
}

function choose(key) {
  const msg = menuFor;
  const menu = $('msg-menu');
  const x = parseInt(menu.style.left, 10) || 0, y = parseInt(menu.style.top, 10) || 0;
  hideMenu();
  if (msg) actions[key](msg, x, y);
}

function anyItem(msg) {
  return ITEMS.some((item) => item[2](msg));
}

export function bindMenu(li, msg) {
  li.tabIndex = 0;
  li.addEventListener('contextmenu', function (e) {
    if (!anyItem(msg)) return;
    e.preventDefault();
    showMenu(msg, e.clientX, e.clientY);
  });
  li.addEventListener('keydown', function (e) {
    if (e.target !== li) return;
    if (e.key === 'ContextMenu' || (e.key === 'F10' && e.shiftKey) || e.key === 'Enter') {
      if (!anyItem(msg)) return;
      e.preventDefault();
      const box = li.getBoundingClientRect();
      showMenu(msg, box.left + 40, box.top + box.height / 2);
    }
  });
  let timer = null, pressed = false;
  li.addEventListener('touchstart', function (e) {
    pressed = false;
    if (!anyItem(msg) || e.touches.length !== 1) return;
    const touch = e.touches[0];
    timer = setTimeout(function () {
      pressed = true;
      showMenu(msg, touch.clientX, touch.clientY);
    }, LONG_PRESS_MS);
  }, {passive: true});
  ['touchmove', 'touchcancel'].forEach(function (name) {
    li.addEventListener(name, function () { clearTimeout(timer); }, {passive: true});
  });
  // Lifting the finger after a long press must not click (which closes the menu).
  li.addEventListener('touchend', function (e) {
    clearTimeout(timer);
    if (pressed) e.preventDefault();
    pressed = false;
  });
}

function showMenu(msg, x, y) {
  const menu = $('msg-menu');
  menuFor = msg;
  ITEMS.forEach(([key, , shown]) => { $(key + '-btn').parentNode.hidden = !shown(msg); });
  menu.hidden = false;
  const width = menu.offsetWidth, height = menu.offsetHeight;
  menu.style.left = Math.max(4, Math.min(x, window.innerWidth - width - 4)) + 'px';
  menu.style.top = Math.max(4, Math.min(y, window.innerHeight - height - 4)) + 'px';
  const first = Array.from(menu.querySelectorAll('button')).filter((b) => !b.parentNode.hidden)[0];
  if (first) first.focus();
}

// The menu of the message `li` shows, beside it (from the keyboard).
export function showMenuBeside(li, msg) {
  if (!msg || !anyItem(msg)) return;
  const box = li.getBoundingClientRect();
  showMenu(msg, box.left + 40, box.top + box.height / 2);
}

export function hideMenu() {
  $('msg-menu').hidden = true;
  menuFor = null;
}
