/* Who may reach me (issue 22): friend requests to me and from me (accept, decline),
 * the people I block (block, unblock), and the contact events (cmd 17) that change
 * them or my lists while the page is open. Questions ("Block Bo?") are asked before
 * these run (main.js). */
import {t, CMD} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, forget, conv, convKey, refreshUser} from './state.js';
import {loadFriends, loadGroups} from './contacts.js';
import {onGroupEvent} from './community.js';
import {onMuteElsewhere} from './mutes.js';

// Loads of the requests started: only the answer to the latest is kept. An earlier
// one answered late (started by opening the tab, answered after an accept's own
// reload) put the accepted request back, and its badge with it.
let requestLoads = 0;

export function loadRequests() {
  const load = ++requestLoads;
  return api.loadRequests().then((rows) => {
    if (load !== requestLoads) return;
    state.requests = rows;
    rows.forEach((r) => {
      if (!state.users[r.userid]) {
        state.users[r.userid] = {id: r.userid, nickname: r.nickname, avatar: r.avatar};
      }
    });
    emit('requests');
  }, api.fail);
}

// Requests to me, waiting for my answer: the Friends tab's badge.
export function incoming() {
  return state.requests.filter((r) => r.direction === 'in');
}

export function loadBlocked() {
  return api.loadBlocked().then((rows) => {
    state.blocked = rows;
    emit('blocked');
  }, api.fail);
}

export function isBlocked(userId) {
  return state.blocked.some((u) => Number(u.id) === Number(userId));
}


export function accept(userId) {
  return api.act(() => api.acceptRequest(userId), t('request_accepted')).then((done) => {
    loadRequests();
    if (done) loadFriends();
    return done;
  });
}

export function decline(userId) {
  return api.act(() => api.declineRequest(userId), t('request_declined')).then((done) => {
    loadRequests();
    return done;
  });
}

// Blocking a friend ends the friendship: their conversation leaves the lists.
export function block(userId) {
  return api.act(() => api.block(userId), t('blocked_done')).then((done) => {
    if (!done) return false;
    const key = convKey(CMD.USER, Number(userId));
    if (state.convs[key]) forget(conv(key));
    loadFriends();
    loadRequests();
    loadBlocked();
    return true;
  });
}

export function unblock(userId) {
  return api.act(() => api.unblock(userId), t('unblocked_done')).then((done) => {
    loadBlocked();
    return done;
  });
}

// A contact event (cmd 17): what it changes is loaded again.
export function onContact(frame) {
  if (onGroupEvent(frame)) return;
  switch (frame.event) {
    case 'request':
      emit('notice', t('request_came', {name: frame.nickname || ('#' + frame.userid)}));
      return loadRequests();
    case 'accepted':
      loadRequests();
      return loadFriends();
    case 'removed':
      return loadFriends();
    case 'community':  // renamed, or a new picture
      return loadGroups();
    case 'profile':    // a friend's or fellow member's new name or picture
      refreshUser(frame.userid);
      return loadFriends();
    case 'mute':       // muted or unmuted on another device of mine
      return onMuteElsewhere(frame);
  }
}
