/* Friends, groups, a group's members and my own profile: loading them into the state
 * and the actions on them (add, create, join, leave, unfriend, kick, hand over, rename,
 * new avatar). Questions to the person ("Remove Bo?") are asked before these run. */
import {im, t} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, me, setMe, setFriends, setGroups, forget} from './state.js';

export function loadFriends() {
  return api.loadFriends().then(setFriends, api.fail);
}

export function loadGroups() {
  return api.loadGroups().then(setGroups, api.fail);
}

// The members of a group conversation, with the group list fresh for its owner.
export function loadMembers(c) {
  return loadGroups().then(() => api.loadMembers(c.dstid)).then((rows) => {
    rows.forEach((u) => { state.users[u.id] = u; });
    emit('members', {c: c, rows: rows});
  }, api.fail);
}

// {mobile} or {dstid}, [memo]; resolves true once the request is sent (the server
// answers `requested`) or the friend is in the list.
export function addFriend(fields) {
  return api.addFriend(fields).then((reply) => {
    if (reply && reply.status === 'requested') {
      emit('notice', t('request_sent'));
      return true;
    }
    emit('notice', t('friend_added'));
    return loadFriends().then(() => true);
  }, api.fail);
}

// Resolves true once the group exists and is in the list.
export function createGroup(name) {
  return api.createGroup(name).then((group) => {
    emit('notice', t('group_created', {name: group.name}));
    loadGroups();
    return true;
  }, api.fail);
}

// Resolves true once joined, or asked to join (a group whose admins approve).
export function joinGroup(groupId) {
  return api.joinGroup(groupId).then((reply) => {
    if (reply && reply.status === 'requested') {
      emit('notice', t('join_requested'));
      return true;
    }
    emit('notice', t('group_joined'));
    loadGroups();
    return true;
  }, api.fail);
}


export function unfriend(c) {
  return api.act(() => api.unfriend(c.dstid), t('unfriended')).then((done) => {
    if (!done) return;
    forget(c);
    loadFriends();
  });
}

export function leaveGroup(c) {
  return api.act(() => api.leaveGroup(c.dstid), t('left_group')).then((done) => {
    if (!done) return;
    forget(c);
    loadGroups();
  });
}

export function kick(c, user, name) {
  return api.act(() => api.kick(c.dstid, user.id), t('kicked', {name: name})).then((done) => {
    if (done) loadMembers(c);
  });
}

export function transfer(c, user, name) {
  const said = t('transferred', {name: name});
  return api.act(() => api.transfer(c.dstid, user.id), said).then((done) => {
    if (done) loadMembers(c);
  });
}

// Resolves true once the password is changed (my other logins end; this one stays).
export function changePassword(passwd, newpasswd) {
  return api.act(() => api.changePassword(passwd, newpasswd), t('password_changed'));
}

// {name} or {icon}; resolves true once the group has them.
export function updateGroup(c, fields, message) {
  return api.act(() => api.updateGroup(c.dstid, fields), message).then((done) => {
    if (done) loadGroups();
    return done;
  });
}

// {nickname}, {avatar} or {memo}
export function updateProfile(fields, message) {
  return api.updateProfile(fields).then((user) => {
    user.mobile = user.mobile || me.mobile;
    im.session.updateUser(user);
    setMe(user);
    emit('notice', message);
  }, api.fail);
}
