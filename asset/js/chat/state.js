/* What the page knows: who I am, friends, groups, every profile seen, the tab and the
 * open conversation, and the conversations with their messages, unread counts and read
 * positions (the server keeps both: /chat/conversations and cmd 12). Its setters
 * announce what they changed (events.js); nothing here draws. */
import {im, t, CMD, displayName} from './util.js';
import {emit} from './events.js';
import {findUser} from './api.js';

const current = im.session.get();
export const signedIn = !!current;
export let me = current ? current.user : {id: 0};
export const token = current ? current.token : '';
const keyPrefix = 'imchat.u' + me.id + '.';

export const state = {
  tab: 'chats',
  friends: [],             // public profiles, as /contact/loadfriend lists them
  groups: [],              // communities
  requests: [],            // pending friend requests, /contact/requests rows (in and out)
  blocked: [],             // public profiles of the people I block
  joinRequests: {},        // group id -> requests to join it (/contact/joinrequests rows)
  invitations: [],         // groups I am invited to: {groupId, inviterId, inviterName, profile}
  users: {},               // id -> public profile, everyone we have seen
  convs: {},               // 'cmd:dstid' -> conversation
  open: null,              // the conversation on screen
  unread: {},              // 'cmd:dstid' -> messages from others after my read position
  since: Number(im.storageGet(keyPrefix + 'since')) || 0,
  drafts: {},              // 'cmd:dstid' -> the text typed there and not sent
  localSeq: 0
};
state.users[me.id] = me;

export function setMe(user) {
  me = user;
  state.users[me.id] = me;
  emit('me');
}

export function setTab(tab) {
  state.tab = tab;
  emit('tab', tab);
}

export function setOpen(c) {
  state.open = c;
  emit('open', c);
}

export function setFriends(rows) {
  state.friends = rows;
  rows.forEach((u) => { state.users[u.id] = u; });
  emit('friends');
}

export function setGroups(rows) {
  state.groups = rows;
  emit('groups');
}

export function groupOf(id) {
  return state.groups.filter((g) => g.id === id)[0];
}

// What a conversation is called: the friend's name, or the group's.
export function titleOf(c) {
  if (c.cmd === CMD.GROUP) {
    const g = groupOf(c.dstid);
    return g ? g.name : t('tab_groups') + ' ' + c.dstid;
  }
  return displayName(userOf(c.dstid));
}

// A conversation's row is to be drawn again: its last message or unread count moved.
export function touched(c) {
  emit('conversation', c);
}

// Many conversations changed at once (the server's list arrived).
export function touchedAll() {
  emit('conversations');
}

export function setUnread(c, count) {
  if ((state.unread[c.key] || 0) === count) return;
  state.unread[c.key] = count;
  touched(c);
}

// Muted (issue 22): until a time in ms, or for ever (-1); 0 is not muted.
export function isMuted(c) {
  const until = Number(c && c.muteuntil) || 0;
  return until === -1 || until > Date.now();
}

// A muted conversation's unread messages show on its row only, unless they mention me.
export function totalUnread() {
  return Object.keys(state.unread).reduce((sum, key) => {
    const c = state.convs[key];
    if (c && isMuted(c) && !c.mentioned) return sum;
    return sum + (state.unread[key] || 0);
  }, 0);
}

// After unfriending or leaving: the conversation leaves the lists (its history stays
// on the server) and the screen.
export function forget(c) {
  delete state.convs[c.key];
  delete state.unread[c.key];
  if (state.open === c) setOpen(null);
  emit('forgotten', c);
}

/* ---------- drafts ---------- */

// What is typed and not sent, per conversation, kept in this browser for this user
// across reloads: 'imchat.u<me>.draft.<cmd>:<dstid>'.
const draftPrefix = keyPrefix + 'draft.';
export function draftOf(c) {
  return (c && state.drafts[c.key]) || '';
}

export function setDraft(c, text) {
  const value = text && text.trim() ? text : '';
  if ((state.drafts[c.key] || '') === value) return;
  if (value) state.drafts[c.key] = value;
  else delete state.drafts[c.key];
  im.storageSet(draftPrefix + c.key, value || null);
  emit('conversation', c);
}

function loadDrafts() {
  try {
    for (let i = 0; i < window.localStorage.length; i++) {
      const name = window.localStorage.key(i);
      if (name && name.indexOf(draftPrefix) === 0) {
        const key = name.slice(draftPrefix.length);
        if (/^1[01]:\d+$/.test(key)) {
          state.drafts[key] = window.localStorage.getItem(name);
          conv(key);
        }
      }
    }
  } catch (e) { /* no storage: no drafts */ }
}

// Counts kept by an older version of this page, before the server kept them.
im.storageSet(keyPrefix + 'unread', null);

// The highest msgid seen, where the next connection's `since` starts.
export function advanceSince(msgid) {
  if (msgid > state.since) {
    state.since = msgid;
    im.storageSet(keyPrefix + 'since', String(state.since));
  }
}

export function convKey(cmd, dstid) { return cmd + ':' + dstid; }

// The conversation a stored message belongs to, as seen from me.
export function keyOfMessage(msg) {
  if (msg.cmd === CMD.GROUP) return convKey(CMD.GROUP, msg.dstid);
  const peer = Number(msg.userid) === Number(me.id) ? msg.dstid : msg.userid;
  return convKey(CMD.USER, peer);
}

export function conv(key) {
  let c = state.convs[key];
  if (!c) {
    const parts = key.split(':');
    c = state.convs[key] = {key: key, cmd: Number(parts[0]), dstid: Number(parts[1]),
                            byId: {}, pending: [], historyLoaded: false, hasOlder: true,
                            loading: false, last: null,
                            readmsgid: 0,      // how far I have read (any of my devices)
                            peerreadmsgid: 0}; // 1:1: how far the friend has read
  }
  return c;
}

export function sortedMessages(c) {
  const stored = Object.keys(c.byId).map((k) => c.byId[k]);
  stored.sort((a, b) => a.msgid - b.msgid);
  return stored.concat(c.pending);
}

// The newest stored message on screen in a conversation (0 if none).
export function newestMsgid(c) {
  const ids = Object.keys(c.byId).map(Number);
  return ids.length ? Math.max.apply(null, ids) : 0;
}

export function oldestMsgid(c) {
  const ids = Object.keys(c.byId).map(Number);
  return ids.length ? Math.min.apply(null, ids) : 0;
}

// Keep a stored message in its conversation; false if it was already there.
export function remember(c, msg) {
  if (c.byId[msg.msgid]) return false;
  c.byId[msg.msgid] = msg;
  // >=: the stream's copy replaces the one /chat/conversations gave for the list.
  if (!c.last || (c.last.msgid && msg.msgid >= c.last.msgid)) c.last = msg;
  return true;
}

// A message taken back: its body is gone for everyone (the server erased it too).
export function markRecalled(msg) {
  ['content', 'url', 'pic', 'memo', 'amount'].forEach((k) => { delete msg[k]; });
  msg.recalled = 1;
}

export function isFriend(id) {
  return state.friends.some((f) => f.id === Number(id));
}

// Someone's profile changed (cmd 17 'profile'): fetched again, then 'profile'.
export function refreshUser(id) {
  id = Number(id);
  return findUser(id).then((user) => {
    const known = state.users[id];
    state.users[id] = known ? Object.assign(known, user) : user;
    state.friends.forEach((f) => { if (f.id === id) Object.assign(f, user); });
    emit('profile', id);
  }, () => { /* keep what we have */ });
}

const userRequests = {};
// The profile of any user id, fetched once; a 'profile' event says when it arrives.
export function userOf(id) {
  id = Number(id);
  if (state.users[id]) return state.users[id];
  if (!userRequests[id]) {
    userRequests[id] = findUser(id).then((user) => {
      state.users[id] = user;
      emit('profile', id);
    }, () => { /* keep the placeholder */ });
  }
  return {id: id, nickname: '#' + id, avatar: ''};
}

loadDrafts();
