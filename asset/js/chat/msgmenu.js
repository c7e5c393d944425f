/* A message's menu (Copy; Recall on my own while it may still be taken back): a right
 * click, a long press on a touch screen, or from the keyboard on a focused message
 * (Enter, the context-menu key or Shift+F10). Inside it the arrows move, Escape closes
 * it and gives the focus back to the message. */
import {$} from './util.js';
import {canRecall} from './messages.js';

const LONG_PRESS_MS = 550;
let menuFor = null;
let returnTo = null;

// What a message offers to copy: its text (or the link it carries).
export function copyText(msg) {
  if (!msg || msg.recalled) return '';
  return String(msg.content || msg.url || '');
}

// handlers: recall(msg), copy(text) -> a promise
export function mountMenu(handlers) {
  $('recall-btn').addEventListener('click', () => {
    const msg = menuFor;
    hideMenu(true);
    if (msg) handlers.recall(msg);
  });
  $('copy-btn').addEventListener('click', () => {
    const text = copyText(menuFor);
    hideMenu(true);
    if (text) handlers.copy(text);
  });
  document.addEventListener('click', (e) => {
    if (!$('msg-menu').contains(e.target)) hideMenu();
  });
  $('messages').addEventListener('scroll', () => { if (!menuFocused()) hideMenu(); }, {passive: true});
  $('msg-menu').addEventListener('keydown', (e) => {
    const items = menuItems();
    const at = items.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const step = e.key === 'ArrowDown' ? 1 : -1;
      items[(at + step + items.length) % items.length].focus();
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      items[e.key === 'Home' ? 0 : items.length - 1].focus();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      hideMenu(true);
    } else if (e.key === 'Tab') {
      hideMenu(true);
    }
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') hideMenu(); });
}

function menuItems() {
  return Array.from($('msg-menu').querySelectorAll('button')).filter((b) => !b.closest('li').hidden);
}

function menuFocused() {
  return $('msg-menu').contains(document.activeElement);
}

export function hasMenu(msg) {
  return !!copyText(msg) || canRecall(msg);
}

export function bindMenu(li, msg) {
  li.addEventListener('contextmenu', function (e) {
    if (!hasMenu(msg)) return;
    e.preventDefault();
    showMenu(msg, e.clientX, e.clientY, li);
  });
  let timer = null, pressed = false;
  li.addEventListener('touchstart', function (e) {
    pressed = false;
    if (!hasMenu(msg) || e.touches.length !== 1) return;
    const touch = e.touches[0];
    timer = setTimeout(function () {
      pressed = true;
      showMenu(msg, touch.clientX, touch.clientY, li);
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

// From the keyboard: the menu opens beside the message's bubble.
export function showMenuBeside(li, msg) {
  if (!hasMenu(msg)) return;
  const box = (li.querySelector('.bubble') || li).getBoundingClientRect();
  showMenu(msg, box.left + 8, box.bottom - 4, li);
}

function showMenu(msg, x, y, from) {
  const menu = $('msg-menu');
  menuFor = msg;
  returnTo = from || null;
  $('copy-btn').closest('li').hidden = !copyText(msg);
  $('recall-btn').closest('li').hidden = !canRecall(msg);
  menu.hidden = false;
  const width = menu.offsetWidth, height = menu.offsetHeight;
  menu.style.left = Math.max(4, Math.min(x, window.innerWidth - width - 4)) + 'px';
  menu.style.top = Math.max(4, Math.min(y, window.innerHeight - height - 4)) + 'px';
  menuItems()[0].focus();
}

// `giveBack`: the focus returns to the message the menu was opened on.
export function hideMenu(giveBack) {
  const menu = $('msg-menu');
  if (menu.hidden) return;
  menu.hidden = true;
  menuFor = null;
  if (giveBack && returnTo && returnTo.isConnected) returnTo.focus();
  returnTo = null;
}

