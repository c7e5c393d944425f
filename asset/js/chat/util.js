/* Leaf helpers of the chat page: the protocol's numbers, the DOM, time and avatars.
 * Everything from the network reaches the page through imchat.h (text, never HTML). */
export const im = window.imchat;
export const t = im.t;
export const h = im.h;

export const CMD = {HEART: 0, ACK: 1, USER: 10, GROUP: 11, READ: 12, TYPING: 13, RECALL: 14,
                    PRESENCE: 15, CONTACT: 17, EDIT: 18, REACTION: 19};

// A refused acknowledgement in the person's language: by its `reason` when it has one.
export function ackText(ack) {
  return ack.reason ? im.reasonText(ack.reason, 400) : (ack.msg || im.reasonText('', 400));
}
export const MEDIA = {TEXT: 1, NEWS: 2, VOICE: 3, IMAGE: 4, REDPACKET: 5, EMOJI: 6, LINK: 7,
                      VIDEO: 8, CONTACT: 9, FILE: 10, APP: 100};
// The original sent emoji as names ("cry"); show the common ones as pictures.
export const EMOJI_NAMES = {cry: '😭', smile: '😊', laugh: '😂', angry: '😡', love: '😍',
                            like: '👍', ok: '👌', heart: '❤️', kiss: '😘', cool: '😎'};

export const $ = (id) => document.getElementById(id);

let toastTimer = null;
export function toast(message) {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  box.dataset.shown = String(Date.now());
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

// A picture, or the name's first letter on a colour of its own. Users and groups
// number from 1 each, so a group's colour is taken from the other half of the wheel:
// user 1 and group 1 never look alike. Dark enough for white letters (AA).
export function avatar(user, extraClass) {
  const className = 'avatar' + (extraClass ? ' ' + extraClass : '');
  const src = im.localUrl(user && (user.avatar || user.icon));
  if (src) return h('span', {className: className}, [h('img', {src: src, alt: ''})]);
  const name = displayName(user) || '?';
  const id = Number(user && user.id) || 0;
  const hue = (id * 47 + (user && user.kind === 'group' ? 180 : 0)) % 360;
  const el = h('span', {className: className + ' avatar-letter', text: Array.from(name)[0].toUpperCase(),
                        'aria-hidden': 'true', dataset: {hue: String(hue)}});
  el.style.backgroundColor = 'hsl(' + hue + ', 55%, 30%)';
  return el;
}

// The text of a message split into text and links: every http(s) URL becomes an <a>
// that opens in a new tab without giving that page a handle on this one. Built as
// nodes (never parsed as HTML); trailing punctuation stays out of the link.
const URL_IN_TEXT = /https?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff5e]+/gi;
export function linkify(text) {
  const nodes = [];
  let at = 0;
  String(text).replace(URL_IN_TEXT, (match, offset) => {
    const url = match.replace(/[.,;:!?)\]}'"]+$/, '');
    const href = im.linkUrl(url);
    if (!href) return match;
    if (offset > at) nodes.push(document.createTextNode(text.slice(at, offset)));
    nodes.push(h('a', {href: href, target: '_blank', rel: 'noopener noreferrer', text: url}));
    at = offset + url.length;
    return match;
  });
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

export function randomTag() {
  const bytes = new Uint8Array(6);
  window.crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, (b) => ('0' + b.toString(16)).slice(-2)).join('');
}
