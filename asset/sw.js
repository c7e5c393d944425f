/* imchat's service worker (served at /sw.js, scope /): the app shell cached so an
 * installed app opens without the network (the page then says it is offline), and
 * Web Push notifications (docs/push.md): one per conversation (`tag`), closed when the
 * conversation is read on another device, opening or focusing the client on click. */
'use strict';

const SHELL_CACHE = 'imchat-shell-v3';
// Every module of the chat page: a missing one would fail the install.
const SHELL = ['/chat/index.shtml', '/user/login.shtml', '/user/register.shtml',
  '/asset/css/app.css', '/asset/js/common.js', '/asset/js/auth.js',
  '/asset/js/chat/api.js', '/asset/js/chat/bubbles.js', '/asset/js/chat/composer.js',
  '/asset/js/chat/conn.js', '/asset/js/chat/contacts.js', '/asset/js/chat/events.js',
  '/asset/js/chat/lists.js', '/asset/js/chat/main.js', '/asset/js/chat/media.js',
  '/asset/js/chat/messages.js', '/asset/js/chat/metab.js', '/asset/js/chat/msgmenu.js',
  '/asset/js/chat/notify.js', '/asset/js/chat/pane.js', '/asset/js/chat/panels.js',
  '/asset/js/chat/presence.js', '/asset/js/chat/reads.js', '/asset/js/chat/requests.js',
  '/asset/js/chat/requestsview.js', '/asset/js/chat/rows.js',
  '/asset/js/chat/session.js', '/asset/js/chat/shell.js', '/asset/js/chat/state.js',
  '/asset/js/chat/util.js', '/asset/js/chat/announce.js', '/asset/js/chat/rich.js',
  '/asset/js/chat/richcomposer.js', '/asset/js/chat/richview.js', '/asset/js/chat/route.js',
  '/asset/img/logo.svg', '/asset/img/icon-192.png', '/asset/img/icon-512.png',
  '/manifest.webmanifest'];
const STRINGS = {
  zh: {new_message: '新消息', messages: '{n} 条新消息', request: '新的好友请求',
       m_media: '[多媒体消息]', someone: '有人'},
  en: {new_message: 'New message', messages: '{n} new messages', request: 'New friend request',
       m_media: '[Media message]', someone: 'Someone'}
};

function t(key, n) {
  const lang = (self.navigator.language || 'zh').indexOf('zh') === 0 ? 'zh' : 'en';
  return STRINGS[lang][key].replace('{n}', n);
}

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((key) => key !== SHELL_CACHE).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

// The shell: from the network when it answers (and kept fresh), else from the cache.
// API calls and the WebSocket are never cached.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (SHELL.indexOf(path) < 0 && !path.startsWith('/asset/')) return;
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok && SHELL.indexOf(path) >= 0) {
      const copy = response.clone();
      caches.open(SHELL_CACHE).then((cache) => cache.put(path, copy));
    }
    return response;
  }, () => caches.match(path).then((hit) => hit || Response.error())));
});

function tagOf(data) { return 'c' + data.target + '-' + data.dstid; }

function showMessage(data) {
  const from = data.from || {};
  let body = data.text || (from.nickname ? t('m_media') : t('new_message'));
  if (data.count > 1) body = t('messages', data.count) + (data.text ? ': ' + data.text : '');
  return self.registration.showNotification(from.nickname || 'imchat', {
    body: body,
    icon: from.avatar || '/asset/img/icon-192.png',
    badge: '/asset/img/icon-192.png',
    tag: tagOf(data),
    renotify: true,
    data: {target: data.target, dstid: data.dstid, msgid: data.msgid}
  });
}

function closeRead(data) {
  return self.registration.getNotifications({tag: tagOf(data)}).then((shown) => {
    shown.forEach((n) => { if (!n.data || n.data.msgid <= data.msgid) n.close(); });
  });
}

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  let done;
  if (data.kind === 'read') done = closeRead(data);
  else if (data.kind === 'request') {
    done = self.registration.showNotification(t('request'), {
      body: (data.from && data.from.nickname) || t('someone'), tag: 'request',
      icon: (data.from && data.from.avatar) || '/asset/img/icon-192.png'});
  } else done = showMessage(data);
  event.waitUntil(done);
});

self.addEventListener('notificationclick', (event) => {
  const data = event.notification.data || {};
  event.notification.close();
  const hash = data.target ? '#open=' + data.target + '-' + data.dstid : '';
  event.waitUntil(self.clients.matchAll({type: 'window', includeUncontrolled: true})
    .then((windows) => {
      const open = windows.find((w) => new URL(w.url).pathname === '/chat/index.shtml');
      if (open) {
        open.postMessage({type: 'imchat:open', target: data.target, dstid: data.dstid});
        return open.focus();
      }
      return self.clients.openWindow('/chat/index.shtml' + hash);
    }));
});
