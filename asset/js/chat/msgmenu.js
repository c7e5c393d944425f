/* A message's menu (Recall): a right click, or a long press on a touch screen, on one
 * of my messages that may still be taken back. */
import {$} from './util.js';
import {canRecall} from './messages.js';

const LONG_PRESS_MS = 550;
let menuFor = null;

// recall(msg): what the menu's Recall does.
export function mountMenu(recall) {
  $('recall-btn').addEventListener('click', () => {
    const msg = menuFor;
    hideMenu();
    if (msg) recall(msg);
  });
  document.addEventListener('click', (e) => {
    if (!$('msg-menu').contains(e.target)) hideMenu();
  });
  $('messages').addEventListener('scroll', hideMenu, {passive: true});
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') hideMenu(); });
}

export function bindMenu(li, msg) {
  li.addEventListener('contextmenu', function (e) {
    if (!canRecall(msg)) return;
    e.preventDefault();
    showMenu(msg, e.clientX, e.clientY);
  });
  let timer = null, pressed = false;
  li.addEventListener('touchstart', function (e) {
    pressed = false;
    if (!canRecall(msg) || e.touches.length !== 1) return;
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
  menu.hidden = false;
  const width = menu.offsetWidth, height = menu.offsetHeight;
  menu.style.left = Math.max(4, Math.min(x, window.innerWidth - width - 4)) + 'px';
  menu.style.top = Math.max(4, Math.min(y, window.innerHeight - height - 4)) + 'px';
  $('recall-btn').focus();
}

export function hideMenu() {
  $('msg-menu').hidden = true;
  menuFor = null;
}
