/* Leaf helpers of the chat page: the protocol's numbers, the DOM, time and avatars.
 * Everything from the network reaches the page through imchat.h (text, never HTML). */
export const im = window.imchat;
export const t = im.t;
export const h = im.h;

export const CMD = {HEART: 0, ACK: 1, USER: 10, GROUP: 11, READ: 12, TYPING: 13, RECALL: 14,
                    PRESENCE: 15, CONTACT: 17};
export const MEDIA = {TEXT: 1, NEWS: 2, VOICE: 3, IMAGE: 4, REDPACKET: 5, EMOJI: 6, LINK: 7,
                      VIDEO: 8, CONTACT: 9, APP: 100};
// The original sent emoji as names ("cry"); show the common ones as pictures.
export const EMOJI_NAMES = {cry: '😭', smile: '😊', laugh: '😂', angry: '😡', love: '😍',
                            like: '👍', ok: '👌', heart: '❤️', kiss: '😘', cool: '😎'};

export const $ = (id) => document.getElementById(id);

let toastTimer = null;
export function toast(message) {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 2500);
}

function pad(n) { return n < 10 ? '0' + n : String(n); }

export function formatTime(ms) {
  if (!ms) return '';
  const d = new Date(Number(ms));
  const now = new Date();
  const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
  if (d.toDateString() === now.toDateString()) return hm;
  let md = im.lang() === 'zh' ? (d.getMonth() + 1) + '月' + d.getDate() + '日'
    : d.toLocaleDateString('en', {month: 'short', day: 'numeric'});
  if (d.getFullYear() !== now.getFullYear()) md = d.getFullYear() + (im.lang() === 'zh' ? '年' : ' ') + md;
  return md + ' ' + hm;
}

export function displayName(user) {
  if (!user) return '';
  return user.nickname || user.name || ('#' + user.id);
}

export function avatar(user, extraClass) {
  const className = 'avatar' + (extraClass ? ' ' + extraClass : '');
  const src = im.localUrl(user && (user.avatar || user.icon));
  if (src) return h('span', {className: className}, [h('img', {src: src, alt: ''})]);
  const name = displayName(user) || '?';
  const hue = ((Number(user && user.id) || 0) * 47) % 360;
  const el = h('span', {className: className + ' avatar-letter', text: Array.from(name)[0].toUpperCase()});
  el.style.backgroundColor = 'hsl(' + hue + ', 55%, 52%)';
  return el;
}

export function randomTag() {
  const bytes = new Uint8Array(6);
  window.crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, (b) => ('0' + b.toString(16)).slice(-2)).join('');
}
