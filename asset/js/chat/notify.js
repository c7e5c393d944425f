/* Notifications (docs/push.md): the service worker and the installable app, the
 * "Notifications" switch on the Me tab (permission is asked only when it is turned
 * on), the page's visibility told to the server (cmd 20: a hidden page gets pushes),
 * and, while the page is hidden, the unread count on the favicon and the app badge, and
 * an optional sound (the "Sound" switch, off by default). A conversation read here
 * closes its notifications. Hooks: main.js calls startNotify(open) once, connected() on
 * every (re)connect and readHere(c) when the person reads a conversation. */
import {$} from './util.js';
import * as api from './api.js';
import * as conn from './conn.js';
import {me} from './state.js';
import {on} from './events.js';

const CMD_VISIBILITY = 20;
const STRINGS = {
  zh: {notifications: '通知', unsupported: '这个浏览器不支持推送通知',
       server_off: '服务器未开启推送通知', denied: '通知已被浏览器禁止，请在网站设置里允许',
       on: '已开启：离开页面时也会收到新消息通知', off: '已关闭', failed: '开启失败：{why}',
       offline: '离线：显示的是缓存的页面'},
  en: {notifications: 'Notifications', unsupported: 'This browser does not support push notifications',
       server_off: 'Push notifications are off on this server',
       denied: 'Notifications are blocked by the browser: allow them in the site settings',
       on: 'On: new messages are announced while imchat is not in front of you',
       off: 'Off', failed: 'Could not turn them on: {why}',
       offline: 'Offline: showing the saved app'}
};

function s(key, why) {
  const lang = document.documentElement.lang.indexOf('zh') === 0 ? 'zh' : 'en';
  return STRINGS[lang][key].replace('{why}', why || '');
}

const supported = 'serviceWorker' in navigator && 'PushManager' in window &&
  'Notification' in window;
let registration = null;

function b64urlToBytes(text) {
  const raw = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function say(key, why) {
  const status = $('notify-status');
  status.dataset.state = key;
  status.textContent = s(key, why);
}

const serverKey = api.pushKey;

function turnOn() {
  return Notification.requestPermission().then((permission) => {
    if (permission !== 'granted') throw new Error('denied');
    return serverKey();
  }).then((key) => {
    if (!key) throw new Error('server_off');
    return registration.pushManager.subscribe({userVisibleOnly: true,
                                               applicationServerKey: b64urlToBytes(key)});
  }).then((subscription) => api.pushSubscribe(subscription.toJSON()));
}

function turnOff() {
  return registration.pushManager.getSubscription().then((subscription) => {
    if (!subscription) return null;
    const endpoint = subscription.endpoint;
    return subscription.unsubscribe().then(() => api.pushUnsubscribe(endpoint));
  });
}

function bindSwitch() {
  const toggle = $('notify-switch');
  if (!supported) {
    toggle.disabled = true;
    say('unsupported');
    return;
  }
  serverKey().then((key) => {
    if (!key) { toggle.disabled = true; say('server_off'); return; }
    if (Notification.permission === 'denied') { say('denied'); return; }
    navigator.serviceWorker.ready.then((ready) => {
      registration = ready;
      return ready.pushManager.getSubscription();
    }).then((subscription) => {
      toggle.checked = !!subscription && Notification.permission === 'granted';
      say(toggle.checked ? 'on' : 'off');
    });
  }, () => { toggle.disabled = true; say('server_off'); });
  toggle.addEventListener('change', () => {
    toggle.disabled = true;
    const action = toggle.checked ? turnOn() : turnOff();
    action.then(() => say(toggle.checked ? 'on' : 'off'), (error) => {
      toggle.checked = false;
      const reason = error && error.message;
      if (reason === 'denied' || reason === 'server_off') say(reason);
      else say('failed', reason || String(error));
    }).then(() => { toggle.disabled = false; });
  });
}

// -- visibility: a page that is hidden gets pushes ----------------------------------

function sendVisibility() {
  conn.sendNow({cmd: CMD_VISIBILITY, visible: document.hidden ? 0 : 1});
}

export function connected() { sendVisibility(); }

// -- the unread count on the favicon and the app badge, while hidden ---------------

const plainIcon = '/asset/img/icon-192.png';
// The count to draw: two counts in a row load the icon twice, and the loads may finish
// in either order; each draws the latest.
let badgeCount = 0;

function drawBadge(count) {
  badgeCount = count;
  const link = document.querySelector('link[rel=icon]');
  if (!count) {
    if (link.dataset.plain) { link.href = link.dataset.plain; link.type = link.dataset.type; }
    delete link.dataset.badge;
    return;
  }
  if (!link.dataset.plain) { link.dataset.plain = link.href; link.dataset.type = link.type; }
  const image = new Image();
  image.onload = () => {
    const shown = badgeCount;
    if (!shown) return;
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 64;
    const g = canvas.getContext('2d');
    g.drawImage(image, 0, 0, 64, 64);
    g.fillStyle = '#e53935';
    g.beginPath();
    g.arc(44, 20, 20, 0, 2 * Math.PI);
    g.fill();
    g.fillStyle = '#fff';
    g.font = 'bold 26px sans-serif';
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(shown > 99 ? '99' : String(shown), 44, 21);
    link.type = 'image/png';
    link.href = canvas.toDataURL('image/png');
    link.dataset.badge = String(shown);
  };
  image.src = plainIcon;
}

function unreadFromTitle() {
  const match = /^\((\d+)\+?\)/.exec(document.title);
  return match ? Number(match[1]) : 0;
}

function showBadges() {
  // lists.js writes the unread count into the title ("(3) imchat"); mirror it.
  const count = unreadFromTitle();
  drawBadge(count);
  if (navigator.setAppBadge) {
    (count ? navigator.setAppBadge(count) : navigator.clearAppBadge()).catch(() => {});
  }
}

// -- the sound while hidden (off unless turned on, remembered in this browser) -------

const SOUND_KEY = 'imchat.sound';
// At most one sound in this many ms: a reconnect's backlog is one sound, not fifty.
const SOUND_GAP_MS = 2000;
let audio = null;
let soundAt = 0;

function soundOn() { return window.localStorage.getItem(SOUND_KEY) === '1'; }

function audioContext() {
  // Made (or resumed) on the person's gesture: browsers start audio only after one.
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!audio && Context) audio = new Context();
  if (audio && audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

function muted(c) {
  const until = Number(c && c.muteuntil) || 0;
  return until === -1 || until > Date.now();
}

function chime() {
  const context = audio;
  if (!context || Date.now() - soundAt < SOUND_GAP_MS) return;
  soundAt = Date.now();
  const tone = context.createOscillator();
  const volume = context.createGain();
  tone.frequency.value = 880;
  volume.gain.setValueAtTime(0.15, context.currentTime);
  volume.gain.exponentialRampToValueAtTime(0.001, context.currentTime + 0.3);
  tone.connect(volume).connect(context.destination);
  tone.start();
  tone.stop(context.currentTime + 0.3);
}

function bindSound() {
  const toggle = $('sound-switch');
  toggle.checked = soundOn();
  toggle.addEventListener('change', () => {
    window.localStorage.setItem(SOUND_KEY, toggle.checked ? '1' : '0');
    if (toggle.checked) audioContext();
  });
  document.addEventListener('pointerdown', () => { if (soundOn()) audioContext(); },
                            {once: true});
  on('message', ({c, msg}) => {
    if (document.hidden && soundOn() && Number(msg.userid) !== Number(me.id) && !muted(c)) {
      chime();
    }
  });
}

// -- a conversation read here closes its notifications -------------------------------

export function readHere(c) {
  if (!c || document.hidden || !('serviceWorker' in navigator)) return;
  navigator.serviceWorker.getRegistration('/').then((ready) => ready &&
    ready.getNotifications({tag: 'c' + c.cmd + '-' + c.dstid})).then((shown) => {
    (shown || []).forEach((notification) => notification.close());
  }).catch(() => {});
}

// -- opening a conversation from a notification --------------------------------------

function openFromHash(open) {
  const match = /#open=(\d+)-(\d+)/.exec(window.location.hash);
  if (match) {
    history.replaceState(null, '', window.location.pathname);
    open(Number(match[1]), Number(match[2]));
  }
}

export function startNotify(open) {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/sw.js', {scope: '/'}).catch(() => {});
    navigator.serviceWorker.addEventListener('message', (event) => {
      const data = event.data || {};
      if (data.type === 'imchat:open') open(data.target, data.dstid);
    });
  }
  if (!navigator.onLine) document.body.dataset.offline = s('offline');
  window.addEventListener('offline', () => { document.body.dataset.offline = s('offline'); });
  window.addEventListener('online', () => { delete document.body.dataset.offline; });
  bindSwitch();
  bindSound();
  document.addEventListener('visibilitychange', sendVisibility);
  new MutationObserver(showBadges).observe(document.querySelector('title'),
                                           {childList: true, characterData: true, subtree: true});
  showBadges();
  openFromHash(open);
}
