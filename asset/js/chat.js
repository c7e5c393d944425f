/* imchat web client: the chat page. Friends, groups and me; conversations with
 * history; sending text, emoji, images and voice notes over the /chat WebSocket with
 * acknowledgements; reconnecting with backoff and catching up with `since`.
 *
 * Every string from the network goes into the page through textContent or an
 * attribute (see imchat.h), never as HTML, and only this app's own URLs are loaded. */
(function () {
  'use strict';
  var im = window.imchat;
  var t = im.t, h = im.h;

  var CMD_HEART = 0, CMD_ACK = 1, CMD_USER = 10, CMD_GROUP = 11;
  var MEDIA = {TEXT: 1, NEWS: 2, VOICE: 3, IMAGE: 4, REDPACKET: 5, EMOJI: 6, LINK: 7,
               VIDEO: 8, CONTACT: 9, APP: 100};
  var HISTORY_PAGE = 30;
  var HEARTBEAT_MS = 30000;
  // Reconnect after 0.5 s, doubling to at most 15 s, with jitter so that a restarted
  // server is not hit by every client in the same instant.
  var BACKOFF_FIRST_MS = 500, BACKOFF_MAX_MS = 15000, STABLE_MS = 10000;
  var VOICE_MAX_S = 60;
  var EMOJI = ['😀', '😂', '🤣', '😊', '😍', '😘', '😎', '🤔', '😅', '😭', '😡', '😱',
               '😴', '🥳', '🤗', '🙄', '😇', '🤩', '👍', '👎', '👏', '🙏', '💪', '🤝',
               '👌', '✌️', '❤️', '💔', '🔥', '🎉', '🌹', '☕', '🍺', '🍉', '🎂', '⭐',
               '☀️', '🌙', '💯', '✅'];
  // The original sent emoji as names ("cry"); show the common ones as pictures.
  var EMOJI_NAMES = {cry: '😭', smile: '😊', laugh: '😂', angry: '😡', love: '😍',
                     like: '👍', ok: '👌', heart: '❤️', kiss: '😘', cool: '😎'};

  var current = im.session.get();
  if (!current) {
    window.location.replace('/user/login.shtml');
    return;
  }
  var me = current.user;
  var token = current.token;
  var keyPrefix = 'imchat.u' + me.id + '.';

  var state = {
    tab: 'friends',
    friends: [],             // public profiles, as /contact/loadfriend lists them
    groups: [],              // communities
    users: {},               // id -> public profile, everyone we have seen
    convs: {},               // 'cmd:dstid' -> conversation
    open: null,              // the conversation on screen
    unread: readJson('unread', {}),
    since: Number(im.storageGet(keyPrefix + 'since')) || 0,
    socket: null,
    retries: 0,
    reconnectTimer: null,
    stableTimer: null,
    heartbeatTimer: null,
    loggingOut: false,
    localSeq: 0
  };
  state.users[me.id] = me;

  function readJson(name, fallback) {
    try { return JSON.parse(im.storageGet(keyPrefix + name)) || fallback; }
    catch (e) { return fallback; }
  }
  function saveUnread() { im.storageSet(keyPrefix + 'unread', JSON.stringify(state.unread)); }

  var $ = function (id) { return document.getElementById(id); };
  var app = $('app');

  /* ---------- small helpers ---------- */

  var toastTimer = null;
  function toast(message) {
    var box = $('toast');
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 2500);
  }

  function fail(error) {
    if (error && error.status === 401) return endSession();
    toast(error && error.message ? error.message : String(error));
  }

  function endSession() {
    state.loggingOut = true;
    if (state.socket) state.socket.close(1000);
    im.session.clear();
    window.location.replace('/user/login.shtml?expired=1');
  }

  function convKey(cmd, dstid) { return cmd + ':' + dstid; }

  // The conversation a stored message belongs to, as seen from me.
  function keyOfMessage(msg) {
    if (msg.cmd === CMD_GROUP) return convKey(CMD_GROUP, msg.dstid);
    var peer = Number(msg.userid) === Number(me.id) ? msg.dstid : msg.userid;
    return convKey(CMD_USER, peer);
  }

  function conv(key) {
    var c = state.convs[key];
    if (!c) {
      var parts = key.split(':');
      c = state.convs[key] = {key: key, cmd: Number(parts[0]), dstid: Number(parts[1]),
                              byId: {}, pending: [], historyLoaded: false, hasOlder: true,
                              loading: false, last: null};
    }
    return c;
  }

  function sortedMessages(c) {
    var stored = Object.keys(c.byId).map(function (k) { return c.byId[k]; });
    stored.sort(function (a, b) { return a.msgid - b.msgid; });
    return stored.concat(c.pending);
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function formatTime(ms) {
    if (!ms) return '';
    var d = new Date(Number(ms));
    var now = new Date();
    var hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    if (d.toDateString() === now.toDateString()) return hm;
    var md = im.lang() === 'zh' ? (d.getMonth() + 1) + '月' + d.getDate() + '日'
      : d.toLocaleDateString('en', {month: 'short', day: 'numeric'});
    if (d.getFullYear() !== now.getFullYear()) md = d.getFullYear() + (im.lang() === 'zh' ? '年' : ' ') + md;
    return md + ' ' + hm;
  }

  function displayName(user) {
    if (!user) return '';
    return user.nickname || user.name || ('#' + user.id);
  }

  function avatar(user, extraClass) {
    var className = 'avatar' + (extraClass ? ' ' + extraClass : '');
    var src = im.localUrl(user && (user.avatar || user.icon));
    if (src) return h('span', {className: className}, [h('img', {src: src, alt: ''})]);
    var name = displayName(user) || '?';
    var hue = ((Number(user && user.id) || 0) * 47) % 360;
    var el = h('span', {className: className + ' avatar-letter', text: Array.from(name)[0].toUpperCase()});
    el.style.backgroundColor = 'hsl(' + hue + ', 55%, 52%)';
    return el;
  }

  var userRequests = {};
  // The profile of any user id, fetched once; the open conversation is redrawn when
  // a profile arrives.
  function userOf(id) {
    id = Number(id);
    if (state.users[id]) return state.users[id];
    if (!userRequests[id]) {
      userRequests[id] = im.api('/user/find', {id: id}, 'GET').then(function (reply) {
        state.users[id] = reply.data;
        renderLists();
        if (state.open) {
          $('convo-title').textContent = titleOf(state.open);
          renderMessages(false);
        }
      }, function () { /* keep the placeholder */ });
    }
    return {id: id, nickname: '#' + id, avatar: ''};
  }

  function summary(msg) {
    switch (Number(msg.media)) {
      case MEDIA.TEXT: return msg.content || '';
      case MEDIA.NEWS: return t('m_news') + ' ' + (msg.content || '');
      case MEDIA.VOICE: return t('m_voice') + ' ' + (msg.amount || 0) + '″';
      case MEDIA.IMAGE: return t('m_image');
      case MEDIA.REDPACKET: return t('m_redpacket') + ' ' + (msg.memo || '');
      case MEDIA.EMOJI: return EMOJI_NAMES[msg.content] || msg.content || t('m_emoji');
      case MEDIA.LINK: return t('m_link') + ' ' + (msg.url || '');
      case MEDIA.VIDEO: return t('m_video');
      case MEDIA.CONTACT: return t('m_contact') + ' ' + (msg.memo || '');
      case MEDIA.APP: return t('m_app');
      default: return t('m_unknown');
    }
  }

  /* ---------- tabs and lists ---------- */

  function showTab(tab) {
    state.tab = tab;
    app.dataset.tab = tab;
    ['friends', 'groups', 'me'].forEach(function (name) {
      $('tab-' + name).hidden = name !== tab;
    });
    document.querySelectorAll('.tabbar .tab').forEach(function (el) {
      el.classList.toggle('active', el.dataset.tab === tab);
      el.setAttribute('aria-current', el.dataset.tab === tab ? 'page' : 'false');
    });
    var title = $('list-title');
    title.setAttribute('data-i18n', 'tab_' + tab);
    title.textContent = t('tab_' + tab);
    $('list-action').hidden = tab === 'me';
    $('list-action').setAttribute('aria-expanded', 'false');
    $('add-friend-form').hidden = true;
    $('group-forms').hidden = true;
    if (tab === 'friends') loadFriends();
    if (tab === 'groups') loadGroups();
    if (tab === 'me') renderMe();
  }

  function loadFriends() {
    return im.api('/contact/loadfriend', {}, 'GET').then(function (reply) {
      state.friends = reply.rows || [];
      state.friends.forEach(function (u) { state.users[u.id] = u; });
      renderFriends();
    }, fail);
  }

  function loadGroups() {
    return im.api('/contact/loadcommunity', {}, 'GET').then(function (reply) {
      state.groups = reply.rows || [];
      renderGroups();
    }, fail);
  }

  function listItem(key, who, title, subtitle) {
    var c = state.convs[key];
    var last = c && c.last;
    var unread = state.unread[key] || 0;
    var item = h('li', {className: 'list-item' + (state.open && state.open.key === key ? ' active' : ''),
                        dataset: {conv: key}, tabindex: '0', role: 'button'}, [
      avatar(who, who.online ? 'is-online' : ''),
      h('div', {className: 'list-main'}, [
        h('div', {className: 'list-title-row'}, [
          h('span', {className: 'list-name', text: title}),
          h('span', {className: 'list-time', text: last ? formatTime(last.createat) : ''})
        ]),
        h('div', {className: 'list-sub', text: last ? senderPrefix(c, last) + summary(last) : subtitle})
      ]),
      unread ? h('span', {className: 'badge', text: unread > 99 ? '99+' : unread}) : null
    ]);
    item.addEventListener('click', function () { openConversation(key); });
    item.addEventListener('keydown', function (e) { if (e.key === 'Enter') openConversation(key); });
    return item;
  }

  function senderPrefix(c, msg) {
    if (c.cmd !== CMD_GROUP || Number(msg.userid) === Number(me.id)) return '';
    return displayName(userOf(msg.userid)) + ': ';
  }

  function byRecent(keyOf) {
    return function (a, b) {
      var ca = state.convs[keyOf(a)], cb = state.convs[keyOf(b)];
      var ta = ca && ca.last ? ca.last.msgid || Infinity : 0;
      var tb = cb && cb.last ? cb.last.msgid || Infinity : 0;
      return tb - ta;
    };
  }

  function renderFriends() {
    var list = $('friend-list');
    list.textContent = '';
    var friendKey = function (u) { return convKey(CMD_USER, u.id); };
    state.friends.slice().sort(byRecent(friendKey)).forEach(function (u) {
      var sub = (u.online ? t('online') + ' · ' : '') + 'ID ' + u.id + (u.memo ? ' · ' + u.memo : '');
      list.appendChild(listItem(friendKey(u), u, displayName(u), sub));
    });
    $('friend-empty').hidden = state.friends.length > 0;
    renderBadges();
  }

  function renderGroups() {
    var list = $('group-list');
    list.textContent = '';
    var groupKey = function (g) { return convKey(CMD_GROUP, g.id); };
    state.groups.slice().sort(byRecent(groupKey)).forEach(function (g) {
      var who = {id: g.id, nickname: g.name, avatar: g.icon};
      list.appendChild(listItem(groupKey(g), who, g.name, t('group_id') + ' ' + g.id + (g.memo ? ' · ' + g.memo : '')));
    });
    $('group-empty').hidden = state.groups.length > 0;
    renderBadges();
  }

  function renderBadges() {
    var totals = {friends: 0, groups: 0};
    Object.keys(state.unread).forEach(function (key) {
      totals[key.indexOf(CMD_GROUP + ':') === 0 ? 'groups' : 'friends'] += state.unread[key] || 0;
    });
    document.querySelectorAll('.tabbar .tab').forEach(function (el) {
      var badge = el.querySelector('.badge');
      if (!badge) return;
      var n = totals[el.dataset.tab] || 0;
      badge.hidden = !n;
      badge.textContent = n > 99 ? '99+' : String(n);
    });
    var total = totals.friends + totals.groups;
    document.title = (total ? '(' + total + ') ' : '') + 'imchat';
  }

  function renderLists() { renderFriends(); renderGroups(); }

  function renderMe() {
    var fresh = avatar(me, 'avatar-lg');
    fresh.id = 'me-avatar';
    $('me-avatar').replaceWith(fresh);
    $('me-name').textContent = displayName(me);
    $('me-id').textContent = String(me.id);
    $('me-mobile').textContent = me.mobile || '';
    $('nickname-form').elements.nickname.value = me.nickname || '';
  }

  /* ---------- conversations ---------- */

  function titleOf(c) {
    if (c.cmd === CMD_GROUP) {
      var g = state.groups.filter(function (x) { return x.id === c.dstid; })[0];
      return g ? g.name : t('tab_groups') + ' ' + c.dstid;
    }
    return displayName(userOf(c.dstid));
  }

  function openConversation(key) {
    var c = conv(key);
    state.open = c;
    app.classList.add('in-convo');
    $('chat-empty').hidden = true;
    $('convo').hidden = false;
    $('members-panel').hidden = true;
    $('members-btn').hidden = c.cmd !== CMD_GROUP;
    $('convo-title').textContent = titleOf(c);
    $('emoji-panel').hidden = true;
    markRead(c);
    renderLists();
    renderMessages(true);
    if (!c.historyLoaded) loadHistory(c, false);
    if (window.matchMedia('(min-width: 760px)').matches) $('text-input').focus();
  }

  function closeConversation() {
    state.open = null;
    app.classList.remove('in-convo');
    $('convo').hidden = true;
    $('chat-empty').hidden = false;
    renderLists();
  }

  function markRead(c) {
    if (state.unread[c.key]) {
      delete state.unread[c.key];
      saveUnread();
      renderBadges();
    }
  }

  function oldestMsgid(c) {
    var ids = Object.keys(c.byId).map(Number);
    return ids.length ? Math.min.apply(null, ids) : 0;
  }

  function loadHistory(c, older) {
    if (c.loading || (older && !c.hasOlder)) return;
    c.loading = true;
    setHistoryNote(c);
    var fields = {cmd: c.cmd, dstid: c.dstid, limit: HISTORY_PAGE};
    if (older) fields.before = oldestMsgid(c);
    im.api('/chat/history', fields, 'GET').then(function (reply) {
      var rows = reply.rows || [];
      rows.forEach(function (m) { remember(c, m); });
      c.loading = false;
      c.historyLoaded = true;
      c.hasOlder = rows.length >= HISTORY_PAGE;
      if (state.open === c) {
        var box = $('messages');
        var fromBottom = box.scrollHeight - box.scrollTop;
        renderMessages(!older);
        if (older) box.scrollTop = box.scrollHeight - fromBottom;
        // A screen tall enough to show the whole page cannot scroll: fetch on.
        if (c.hasOlder && box.scrollHeight <= box.clientHeight) loadHistory(c, true);
      }
      renderLists();
    }, function (error) {
      c.loading = false;
      setHistoryNote(c);
      fail(error);
    });
  }

  function setHistoryNote(c) {
    var note = $('history-note');
    if (state.open !== c) return;
    note.textContent = c.loading ? t('loading') : (c.hasOlder && c.historyLoaded ? t('load_older') : t('no_more'));
  }

  // Keep a stored message in its conversation; false if it was already there.
  function remember(c, msg) {
    if (c.byId[msg.msgid]) return false;
    c.byId[msg.msgid] = msg;
    if (!c.last || (c.last.msgid && msg.msgid > c.last.msgid)) c.last = msg;
    return true;
  }

  function renderMessages(toBottom) {
    var c = state.open;
    if (!c) return;
    var box = $('messages');
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    var list = $('msg-list');
    list.textContent = '';
    sortedMessages(c).forEach(function (msg) { list.appendChild(messageElement(msg)); });
    setHistoryNote(c);
    if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
  }

  function appendMessage(msg) {
    var box = $('messages');
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    $('msg-list').appendChild(messageElement(msg));
    if (atBottom || Number(msg.userid) === Number(me.id)) box.scrollTop = box.scrollHeight;
  }

  function messageElement(msg) {
    var mine = Number(msg.userid) === Number(me.id);
    var sender = mine ? me : userOf(msg.userid);
    var meta = h('div', {className: 'msg-meta'}, [
      h('time', {text: formatTime(msg.createat || msg.localTime)})
    ]);
    if (mine) meta.appendChild(stateElement(msg));
    var li = h('li', {className: 'msg ' + (mine ? 'mine' : 'theirs') + ' media-' + msg.media,
                      dataset: {msgid: msg.msgid || '', state: msg.state || 'sent', media: String(msg.media)}}, [
      avatar(sender),
      h('div', {className: 'msg-main'}, [
        h('div', {className: 'msg-name', text: mine ? displayName(me) : displayName(sender)}),
        bubble(msg),
        meta
      ])
    ]);
    msg.el = li;
    return li;
  }

  function stateElement(msg) {
    var status = msg.state || 'sent';
    var text = status === 'sending' ? t('sending') : status === 'failed'
      ? t('not_sent', {why: msg.error || ''}) : t('sent');
    return h('span', {className: 'msg-state state-' + status, text: text});
  }

  function updateState(msg) {
    if (!msg.el) return;
    msg.el.dataset.state = msg.state;
    msg.el.dataset.msgid = msg.msgid || '';
    var meta = msg.el.querySelector('.msg-meta');
    var old = meta.querySelector('.msg-state');
    if (old) old.replaceWith(stateElement(msg));
    if (msg.createat) meta.querySelector('time').textContent = formatTime(msg.createat);
  }

  /* ---------- one renderer per media type ---------- */

  function externalLink(url, label) {
    var href = im.linkUrl(url);
    if (!href) return h('span', {className: 'link-text', text: label || url || ''});
    return h('a', {href: href, target: '_blank', rel: 'noopener noreferrer nofollow',
                   className: 'link-text', text: label || url});
  }

  function openLightbox(src) {
    $('lightbox-img').src = src;
    $('lightbox').hidden = false;
  }

  function bubble(msg) {
    var media = Number(msg.media);
    var b = h('div', {className: 'bubble'});
    var src, href;
    switch (media) {
      case MEDIA.TEXT:
        b.classList.add('bubble-text');
        b.textContent = msg.content || '';
        break;
      case MEDIA.EMOJI:
        b.classList.add('bubble-emoji');
        b.textContent = EMOJI_NAMES[msg.content] || msg.content || '';
        break;
      case MEDIA.IMAGE:
        src = im.localUrl(msg.url);
        b.classList.add('bubble-media');
        if (src) {
          b.appendChild(h('img', {className: 'msg-image', src: src, alt: t('m_image'), loading: 'lazy',
                                  onclick: function () { openLightbox(src); },
                                  onload: keepBottom}));
        } else {
          b.appendChild(externalLink(msg.url, t('m_image') + ' ' + (msg.url || '')));
        }
        break;
      case MEDIA.VOICE:
        b.classList.add('bubble-voice');
        src = im.localUrl(msg.url);
        var seconds = Math.max(0, Math.round(Number(msg.amount) || 0));
        if (src) {
          var audio = h('audio', {src: src, preload: 'none'});
          var play = h('button', {type: 'button', className: 'voice-play', 'aria-label': t('voice')}, [
            h('span', {className: 'voice-icon', text: '▶'}),
            h('span', {className: 'voice-wave', text: ')))'}),
            h('span', {className: 'voice-len', text: seconds + '″'})
          ]);
          play.style.minWidth = Math.min(220, 70 + seconds * 5) + 'px';
          play.addEventListener('click', function () {
            if (audio.paused) { audio.currentTime = 0; audio.play().catch(function () {}); }
            else audio.pause();
          });
          audio.addEventListener('play', function () { play.classList.add('playing'); play.firstChild.textContent = '❚❚'; });
          var stop = function () { play.classList.remove('playing'); play.firstChild.textContent = '▶'; };
          audio.addEventListener('pause', stop);
          audio.addEventListener('ended', stop);
          b.appendChild(play);
          b.appendChild(audio);
        } else {
          b.appendChild(externalLink(msg.url, t('m_voice') + ' ' + seconds + '″'));
        }
        break;
      case MEDIA.NEWS:
        b.classList.add('bubble-card', 'card-news');
        href = im.linkUrl(msg.url);
        var news = h(href ? 'a' : 'div', href ? {href: href, target: '_blank', rel: 'noopener noreferrer nofollow'} : {}, [
          h('div', {className: 'card-title', text: msg.content || t('m_news')}),
          h('div', {className: 'card-body'}, [
            h('div', {className: 'card-memo', text: msg.memo || ''}),
            im.localUrl(msg.pic) ? h('img', {className: 'card-pic', src: im.localUrl(msg.pic), alt: ''}) : null
          ])
        ]);
        b.appendChild(news);
        break;
      case MEDIA.REDPACKET:
        b.classList.add('bubble-card', 'card-redpacket');
        var amount = (Number(msg.amount) || 0) / 100;
        b.appendChild(h('div', {className: 'rp-top'}, [
          h('span', {className: 'rp-icon', text: '🧧'}),
          h('div', {}, [
            h('div', {className: 'card-title', text: msg.memo || t('redpacket_memo')}),
            h('div', {className: 'rp-amount', text: '¥' + amount.toFixed(2)})
          ])
        ]));
        b.appendChild(h('div', {className: 'rp-foot', text: t('redpacket')}));
        break;
      case MEDIA.LINK:
        b.classList.add('bubble-link');
        b.appendChild(h('span', {className: 'link-icon', text: '🔗 '}));
        b.appendChild(externalLink(msg.url, msg.url));
        break;
      case MEDIA.VIDEO:
        b.classList.add('bubble-media');
        src = im.localUrl(msg.url);
        if (src) {
          b.appendChild(h('video', {className: 'msg-video', src: src, controls: true, preload: 'metadata',
                                    poster: im.localUrl(msg.pic) || undefined, playsinline: true}));
        } else {
          b.appendChild(h('span', {className: 'link-icon', text: '🎬 '}));
          b.appendChild(externalLink(msg.url, t('m_video') + ' ' + (msg.url || '')));
        }
        break;
      case MEDIA.CONTACT:
        b.classList.add('bubble-card', 'card-contact');
        var cardId = Number(msg.content);
        var person = {id: cardId, nickname: msg.memo || ('#' + (msg.content || '')), avatar: msg.pic};
        b.appendChild(h('div', {className: 'contact-top'}, [
          avatar(person),
          h('div', {}, [
            h('div', {className: 'card-title', text: displayName(person)}),
            h('div', {className: 'card-memo', text: 'ID ' + (msg.content || '')})
          ])
        ]));
        var known = state.friends.some(function (f) { return f.id === cardId; });
        var foot = h('div', {className: 'contact-foot'}, [h('span', {text: t('contact_card')})]);
        if (cardId > 0 && cardId !== Number(me.id) && !known) {
          foot.appendChild(h('button', {type: 'button', className: 'link', text: t('add_as_friend'),
                                        onclick: function () { addFriend({dstid: cardId}); }}));
        }
        b.appendChild(foot);
        break;
      default:
        b.classList.add('bubble-fallback');
        b.appendChild(h('div', {className: 'fallback-label',
                                text: media === MEDIA.APP ? t('app_message') : t('unsupported', {n: msg.media})}));
        b.appendChild(h('div', {className: 'fallback-body', text: msg.content || msg.url || ''}));
    }
    return b;
  }

  function keepBottom() {
    var box = $('messages');
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 400) box.scrollTop = box.scrollHeight;
  }

  /* ---------- the WebSocket ---------- */

  function setBanner(text) {
    var banner = $('conn-banner');
    banner.textContent = text || '';
    banner.hidden = !text;
    app.classList.toggle('offline', !!text);
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    var url = scheme + '//' + window.location.host + '/chat?id=' + encodeURIComponent(me.id) +
      '&token=' + encodeURIComponent(token) + (state.since ? '&since=' + state.since : '');
    if (state.retries) setBanner(t('connecting'));
    var socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = function () {
      // Back off afresh only once a connection has lasted: a server that accepts and
      // at once closes (shutting down, overloaded) must not be hammered.
      clearTimeout(state.stableTimer);
      state.stableTimer = setTimeout(function () { state.retries = 0; }, STABLE_MS);
      setBanner('');
      app.dataset.conn = 'open';
      clearInterval(state.heartbeatTimer);
      state.heartbeatTimer = setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({cmd: CMD_HEART}));
      }, HEARTBEAT_MS);
      flushOutbox();
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && typeof frame === 'object') onFrame(frame);
    };
    socket.onclose = function (event) {
      if (state.socket !== socket) return;
      state.socket = null;
      app.dataset.conn = 'closed';
      clearInterval(state.heartbeatTimer);
      clearTimeout(state.stableTimer);
      requeueInFlight();
      if (state.loggingOut) return;
      if (event.code === 4401 || event.code === 4403) return endSession();
      // Closed because this user opened more connections elsewhere: reconnecting would
      // only close another one, so wait for the person to reload.
      if (event.code === 4429) return setBanner(t('replaced'));
      var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, state.retries));
      delay = Math.round(delay * (0.75 + Math.random() * 0.5));
      state.retries += 1;
      setBanner(t('reconnecting', {s: Math.max(1, Math.round(delay / 1000))}));
      state.reconnectTimer = setTimeout(connect, delay);
    };
  }

  function onFrame(frame) {
    if (frame.cmd === CMD_ACK) return onAck(frame);
    if (frame.cmd !== CMD_USER && frame.cmd !== CMD_GROUP) return;
    if (!frame.msgid) return;
    receive(frame);
  }

  function receive(msg) {
    msg.msgid = Number(msg.msgid);
    if (msg.msgid > state.since) {
      state.since = msg.msgid;
      im.storageSet(keyPrefix + 'since', String(state.since));
    }
    var c = conv(keyOfMessage(msg));
    if (!remember(c, msg)) return;  // a message seen before (history, or sent here)
    var mine = Number(msg.userid) === Number(me.id);
    if (state.open === c) {
      appendMessage(msg);
      if (document.hidden && !mine) bump(c);
    } else if (!mine) {
      bump(c);
    }
    if (c.cmd === CMD_USER && !state.friends.some(function (f) { return f.id === c.dstid; })) loadFriends();
    else if (c.cmd === CMD_GROUP && !state.groups.some(function (g) { return g.id === c.dstid; })) loadGroups();
    else renderLists();
  }

  function bump(c) {
    state.unread[c.key] = (state.unread[c.key] || 0) + 1;
    saveUnread();
  }

  // Back on the network: try now rather than at the end of the backoff.
  window.addEventListener('online', function () {
    if (!state.socket && !state.loggingOut) {
      state.retries = 0;
      connect();
    }
  });

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && state.open) { markRead(state.open); renderLists(); }
  });

  function onAck(frame) {
    var found = null, c = null;
    Object.keys(state.convs).some(function (key) {
      var pending = state.convs[key].pending;
      for (var i = 0; i < pending.length; i++) {
        if (pending[i].id === frame.id) { found = pending[i]; c = state.convs[key]; return true; }
      }
      return false;
    });
    if (!found) return;
    if (frame.code === 0 && frame.msgid) {
      c.pending.splice(c.pending.indexOf(found), 1);
      found.msgid = Number(frame.msgid);
      found.createat = frame.createat || found.localTime;
      found.state = 'sent';
      delete found.frame;
      if (!remember(c, found)) {
        // Already shown from the stream: drop the local copy.
        if (found.el) found.el.remove();
        return;
      }
      updateState(found);
      renderLists();
    } else {
      found.state = 'failed';
      found.error = frame.msg || '';
      updateState(found);
    }
  }

  // Frames written to a socket that closed before their acknowledgement: the server
  // may or may not have stored them. Their ids are idempotency keys (long, unique
  // strings), so they simply go again on the next connection: the server stores each
  // at most once and acknowledges a repeat with the message it already has.
  function requeueInFlight() {
    Object.keys(state.convs).forEach(function (key) {
      state.convs[key].pending.forEach(function (msg) {
        if (msg.state === 'sending') msg.written = false;
      });
    });
  }

  function flushOutbox() {
    Object.keys(state.convs).forEach(function (key) {
      state.convs[key].pending.forEach(function (msg) {
        if (msg.state === 'sending' && !msg.written) write(msg);
      });
    });
  }

  function write(msg) {
    var socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify(msg.frame));
    msg.written = true;
  }

  // Show a message as sending at once, and write it now or when the socket opens.
  function send(fields) {
    var c = state.open;
    if (!c) return;
    state.localSeq += 1;
    // Unique across this person's devices and page loads: the server takes it as the
    // message's idempotency key.
    var id = 'c' + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
    var frame = {id: id, cmd: c.cmd, dstid: c.dstid};
    Object.keys(fields).forEach(function (k) { frame[k] = fields[k]; });
    var msg = {};
    Object.keys(frame).forEach(function (k) { msg[k] = frame[k]; });
    msg.userid = me.id;
    msg.localTime = Date.now();
    msg.state = 'sending';
    msg.frame = frame;
    c.pending.push(msg);
    appendMessage(msg);
    write(msg);
  }

  function randomTag() {
    var bytes = new Uint8Array(6);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }

  /* ---------- composing ---------- */

  function sendText() {
    var input = $('text-input');
    var text = input.value;
    if (!text.trim()) return;
    send({media: MEDIA.TEXT, content: text});
    input.value = '';
    autosize();
    input.focus();
  }

  function autosize() {
    var input = $('text-input');
    input.style.height = 'auto';
    input.style.height = Math.min(120, input.scrollHeight) + 'px';
  }

  function buildEmojiPanel() {
    var panel = $('emoji-panel');
    EMOJI.forEach(function (e) {
      panel.appendChild(h('button', {type: 'button', className: 'emoji', text: e, 'aria-label': e,
                                     onclick: function () {
                                       send({media: MEDIA.EMOJI, content: e});
                                       panel.hidden = true;
                                     }}));
    });
  }

  function uploadFile(blob, filename, filetype) {
    return new Promise(function (resolve, reject) {
      var form = new FormData();
      form.append('file', blob, filename);
      if (filetype) form.append('filetype', filetype);
      var xhr = new XMLHttpRequest();
      xhr.open('POST', '/attach/upload', true);
      xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      var bar = $('upload-bar');
      bar.hidden = false;
      var progress = function (pct) {
        $('upload-progress').value = pct;
        $('upload-pct').textContent = pct + '%';
      };
      progress(0);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) progress(Math.round(e.loaded * 100 / e.total));
      };
      xhr.onload = function () {
        bar.hidden = true;
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 200 && data && data.code === 0 && data.data) return resolve(data.data);
        if (xhr.status === 401) return endSession();
        reject(new im.ApiError((data && data.msg) || ('HTTP ' + xhr.status), xhr.status));
      };
      xhr.onerror = function () {
        bar.hidden = true;
        reject(new im.ApiError(t('err_network'), 0));
      };
      xhr.send(form);
    });
  }

  function updateProfile(fields, message) {
    return im.api('/user/update', fields).then(function (reply) {
      var mobile = me.mobile;
      me = reply.data;
      me.mobile = me.mobile || mobile;
      state.users[me.id] = me;
      im.session.updateUser(me);
      renderMe();
      if (state.open) renderMessages(false);
      toast(message);
    }, fail);
  }

  function changeAvatar(file) {
    if (!file) return;
    var ext = (file.name.match(/\.[A-Za-z0-9]{1,5}$/) || [''])[0].toLowerCase();
    uploadFile(file, file.name || 'avatar' + ext, ext || undefined).then(function (url) {
      return updateProfile({avatar: url}, t('avatar_saved'));
    }, function (error) { toast(t('upload_failed', {why: error.message})); });
  }

  function sendImage(file) {
    if (!file) return;
    var ext = (file.name.match(/\.[A-Za-z0-9]{1,5}$/) || [''])[0].toLowerCase();
    uploadFile(file, file.name || 'image' + ext, ext || undefined).then(function (url) {
      send({media: MEDIA.IMAGE, url: url});
    }, function (error) { toast(t('upload_failed', {why: error.message})); });
  }

  var recording = null;

  function startRecording() {
    if (!navigator.mediaDevices || !window.MediaRecorder) return toast(t('mic_unsupported'));
    navigator.mediaDevices.getUserMedia({audio: true, video: false}).then(function (stream) {
      var recorder = new MediaRecorder(stream);
      var chunks = [];
      recording = {recorder: recorder, stream: stream, started: Date.now(), cancelled: false, timer: null};
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
      recorder.onstop = function () {
        var rec = recording;
        recording = null;
        clearInterval(rec.timer);
        stream.getTracks().forEach(function (track) { track.stop(); });
        $('recorder').hidden = true;
        $('composer').hidden = false;
        if (rec.cancelled) return;
        var seconds = Math.max(1, Math.round((Date.now() - rec.started) / 1000));
        var type = recorder.mimeType || (chunks[0] && chunks[0].type) || 'audio/webm';
        var ext = type.indexOf('ogg') >= 0 ? '.ogg' : type.indexOf('mp4') >= 0 ? '.m4a' : '.webm';
        var blob = new Blob(chunks, {type: type.split(';')[0]});
        if (!blob.size) return toast(t('too_short'));
        uploadFile(blob, 'voice' + ext, ext).then(function (url) {
          send({media: MEDIA.VOICE, url: url, amount: seconds});
        }, function (error) { toast(t('upload_failed', {why: error.message})); });
      };
      recorder.start();
      $('composer').hidden = true;
      $('emoji-panel').hidden = true;
      $('recorder').hidden = false;
      $('rec-time').textContent = '0″';
      recording.timer = setInterval(function () {
        var s = Math.round((Date.now() - recording.started) / 1000);
        $('rec-time').textContent = s + '″';
        if (s >= VOICE_MAX_S) stopRecording(false);
      }, 250);
    }, function (error) {
      toast(t('mic_failed', {why: error && (error.message || error.name) || ''}));
    });
  }

  function stopRecording(cancel) {
    if (!recording) return;
    recording.cancelled = cancel;
    if (recording.recorder.state !== 'inactive') recording.recorder.stop();
  }

  /* ---------- contacts and groups ---------- */

  function addFriend(fields) {
    return im.api('/contact/addfriend', fields).then(function () {
      toast(t('friend_added'));
      return loadFriends().then(function () { if (state.open) renderMessages(false); });
    }, fail);
  }

  function showMembers() {
    var c = state.open;
    if (!c || c.cmd !== CMD_GROUP) return;
    $('members-group-id').textContent = String(c.dstid);
    var list = $('member-list');
    list.textContent = '';
    $('members-panel').hidden = false;
    im.api('/contact/members', {dstid: c.dstid}, 'GET').then(function (reply) {
      var rows = reply.rows || [];
      rows.forEach(function (u) {
        state.users[u.id] = u;
        var isFriend = state.friends.some(function (f) { return f.id === u.id; });
        var item = h('li', {className: 'list-item', dataset: {userId: String(u.id)}}, [
          avatar(u, u.online ? 'is-online' : ''),
          h('div', {className: 'list-main'}, [
            h('div', {className: 'list-name', text: displayName(u) + (u.id === me.id ? ' (' + t('you') + ')' : '')}),
            h('div', {className: 'list-sub', text: 'ID ' + u.id + (u.online ? ' · ' + t('online') : '')})
          ]),
          u.id !== me.id && !isFriend ? h('button', {type: 'button', className: 'btn btn-small', text: t('add_as_friend'),
                                                      onclick: function () { addFriend({dstid: u.id}); }}) : null
        ]);
        list.appendChild(item);
      });
      $('members-panel').querySelector('.bar-title').textContent = t('members') + ' · ' + t('members_count', {n: rows.length});
    }, fail);
  }

  function logout() {
    state.loggingOut = true;
    clearTimeout(state.reconnectTimer);
    var done = function () {
      if (state.socket) state.socket.close(1000);
      im.session.clear();
      window.location.replace('/user/login.shtml');
    };
    im.api('/user/logout', {}).then(done, done);
  }

  /* ---------- wiring ---------- */

  function bindForms() {
    document.querySelectorAll('.tabbar .tab').forEach(function (el) {
      el.addEventListener('click', function () { showTab(el.dataset.tab); });
    });
    $('list-action').addEventListener('click', function () {
      var form = state.tab === 'friends' ? $('add-friend-form') : $('group-forms');
      form.hidden = !form.hidden;
      this.setAttribute('aria-expanded', String(!form.hidden));
      var first = form.querySelector('input');
      if (!form.hidden && first) first.focus();
    });
    $('add-friend-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var form = this;
      var value = form.elements.target.value.trim();
      if (!value) return;
      var fields = {};
      fields[form.elements.by.value] = value;
      addFriend(fields).then(function () { form.elements.target.value = ''; });
    });
    $('create-group-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var form = this;
      var name = form.elements.name.value.trim();
      if (!name) return;
      im.api('/contact/createcommunity', {name: name}).then(function (reply) {
        form.elements.name.value = '';
        toast(t('group_created', {name: reply.data.name}));
        loadGroups();
      }, fail);
    });
    $('join-group-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var form = this;
      var id = form.elements.dstid.value.trim();
      if (!id) return;
      im.api('/contact/joincommunity', {dstid: id}).then(function () {
        form.elements.dstid.value = '';
        toast(t('group_joined'));
        loadGroups();
      }, fail);
    });
    $('nickname-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var nickname = this.elements.nickname.value.trim();
      if (!nickname) return;
      updateProfile({nickname: nickname}, t('nickname_saved'));
    });
    $('logout-btn').addEventListener('click', logout);
    $('avatar-input').addEventListener('change', function () {
      changeAvatar(this.files[0]);
      this.value = '';
    });
    $('back-btn').addEventListener('click', closeConversation);
    $('members-btn').addEventListener('click', showMembers);
    $('members-close').addEventListener('click', function () { $('members-panel').hidden = true; });
    $('composer').addEventListener('submit', function (e) { e.preventDefault(); sendText(); });
    $('text-input').addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
    });
    $('text-input').addEventListener('input', autosize);
    $('emoji-btn').addEventListener('click', function () { $('emoji-panel').hidden = !$('emoji-panel').hidden; });
    $('image-input').addEventListener('change', function () {
      sendImage(this.files[0]);
      this.value = '';
    });
    $('voice-btn').addEventListener('click', startRecording);
    $('rec-stop').addEventListener('click', function () { stopRecording(false); });
    $('rec-cancel').addEventListener('click', function () { stopRecording(true); });
    $('lightbox').addEventListener('click', function () { this.hidden = true; });
    $('history-note').addEventListener('click', function () {
      if (state.open) loadHistory(state.open, true);
    });
    $('messages').addEventListener('scroll', function () {
      if (state.open && this.scrollTop < 40) loadHistory(state.open, true);
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { $('lightbox').hidden = true; $('emoji-panel').hidden = true; }
    });
    document.addEventListener('imchat:lang', function () {
      showTab(state.tab);
      if (state.open) { $('convo-title').textContent = titleOf(state.open); renderMessages(false); }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    buildEmojiPanel();
    bindForms();
    showTab('friends');
    loadGroups();
    // Check the token before connecting: a stale one goes back to the login page.
    im.api('/user/find', {}, 'GET').then(function (reply) {
      var mobile = me.mobile;
      me = reply.data;
      me.mobile = mobile;
      state.users[me.id] = me;
      connect();
    }, fail);
  });
})();
