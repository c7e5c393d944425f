/* Every HTTP call of the chat page: loading (profiles, friends, groups, members,
 * conversations, history) and actions (contacts, profile, logout, uploads). Each
 * returns a promise of the reply's body (its `data` or `rows`), sent with the
 * session's token, and rejects with an imchat.ApiError that carries the server's
 * message and status. `fail` is what a caller does with one it has no better use for. */
import {im, t} from './util.js';
import {emit} from './events.js';

const get = (path, fields) => im.api(path, fields || {}, 'GET');
const post = (path, fields) => im.api(path, fields || {});
const rows = (reply) => reply.rows || [];
const data = (reply) => reply.data;

// An expired login goes back to the login page; anything else is said in passing.
export function fail(error) {
  // A wrong current password (changing it) is a 401 too, but the login is still good.
  if (error && error.status === 401 && error.reason !== 'auth.wrong_password') {
    return emit('session-over');
  }
  emit('notice', error && error.message ? error.message : String(error));
}

// An action: `call()` made, then `doneMessage` said; resolves true once done, false
// when it failed (and the failure was said).
export function act(call, doneMessage) {
  return call().then(() => {
    emit('notice', doneMessage);
    return true;
  }, (error) => {
    fail(error);
    return false;
  });
}

/* ---------- loading ---------- */

export const findMe = () => get('/user/find').then(data);
export const findUser = (id) => get('/user/find', {id: id}).then(data);
export const loadFriends = () => get('/contact/loadfriend').then(rows);
export const loadGroups = () => get('/contact/loadcommunity').then(rows);
export const loadMembers = (groupId) => get('/contact/members', {dstid: groupId}).then(rows);
export const loadConversations = () => get('/chat/conversations').then(rows);
// {cmd, dstid, limit, before? | around?}: the newest `limit` messages, those before a
// msgid, or those around one (oldest first).
export const loadHistory = (fields) => get('/chat/history', fields).then(rows);
// {q, limit, before?, target? + dstid?}: messages matching, newest first.
export const search = (fields) => get('/chat/search', fields).then(rows);

/* ---------- actions ---------- */

// {mobile} or {dstid}, [memo: a greeting]: resolves with {status: 'requested' or
// 'friends'}, or null where the server makes friends at once (IMCHAT_FRIEND_REQUESTS=0).
export const addFriend = (fields) => post('/contact/addfriend', fields).then(data);
export const loadRequests = () => get('/contact/requests').then(rows);
export const acceptRequest = (userId) => post('/contact/accept', {dstid: userId});
export const declineRequest = (userId) => post('/contact/decline', {dstid: userId});
export const block = (userId) => post('/contact/block', {dstid: userId});
export const unblock = (userId) => post('/contact/unblock', {dstid: userId});
export const loadBlocked = () => get('/contact/blocked').then(rows);
export const unfriend = (userId) => post('/contact/delfriend', {dstid: userId});
export const createGroup = (name) => post('/contact/createcommunity', {name: name}).then(data);
// Resolves with {status: 'joined'} or {status: 'requested'} (a group whose admins approve).
export const joinGroup = (groupId) => post('/contact/joincommunity', {dstid: groupId}).then(data);
export const leaveGroup = (groupId) => post('/contact/quitcommunity', {dstid: groupId});
// Web Push (docs/push.md): the server's VAPID key (null when push is off), and this
// login's browser subscriptions.
export const pushKey = () => get('/push/key').then((reply) => reply.data && reply.data.key);
export const pushSubscribe = (subscription) => post('/push/subscribe', {subscription: subscription});
export const pushUnsubscribe = (endpoint) => post('/push/unsubscribe', {endpoint: endpoint});
export const kick = (groupId, userId) => post('/contact/kick', {dstid: groupId, memberid: userId});
export const transfer = (groupId, userId) =>
  post('/contact/transfer', {dstid: groupId, memberid: userId});
// {nickname}, {avatar} or {memo}: resolves with my whole profile as the server now has it.
export const updateProfile = (fields) => post('/user/update', fields).then(data);
export const changePassword = (passwd, newpasswd) =>
  post('/user/password', {passwd: passwd, newpasswd: newpasswd});
// {name} or {icon}: resolves with the group as the server now has it.
export const updateGroup = (groupId, fields) =>
  post('/contact/updatecommunity', Object.assign({dstid: groupId}, fields)).then(data);
export const logout = () => post('/user/logout');
// Issue 22. `until`: ms since the epoch, -1 for ever, 0 to unmute.
export const mute = (c, until) => post('/chat/mute', {target: c.cmd, dstid: c.dstid, until: until});
// A group's public profile, for anyone: {id, name, icon, memo, members (a count), joinmode}.
export const groupProfile = (groupId) => get('/contact/community', {dstid: groupId}).then(data);
export const joinRequests = (groupId) => get('/contact/joinrequests', {dstid: groupId}).then(rows);
export const approveJoin = (groupId, userId) => post('/contact/approve', {dstid: groupId, memberid: userId});
export const rejectJoin = (groupId, userId) => post('/contact/reject', {dstid: groupId, memberid: userId});
export const setRole = (groupId, userId, role) =>
  post('/contact/setrole', {dstid: groupId, memberid: userId, role: role});
export const muteMember = (groupId, userId, until) =>
  post('/contact/mutemember', {dstid: groupId, memberid: userId, until: until});
export const invite = (groupId, userId) => post('/contact/invite', {dstid: groupId, memberid: userId});
// Invitations waiting for me: {community (its public profile), inviterid, nickname, avatar}.
export const invitations = () => get('/contact/invitations').then(rows);
export const declineInvitation = (groupId) => post('/contact/declineinvite', {dstid: groupId});
// {dstid: a user} or {msgid}, with {reason, memo}.
export const report = (fields) => post('/report', fields);

// A file to the upload store; resolves with its URL (`path` /attach/file: with
// {url, name, size}). `onProgress(percent)` follows the bytes going out
// (XMLHttpRequest, because fetch cannot report them).
export function upload(blob, filename, filetype, onProgress, path) {
  return new Promise(function (resolve, reject) {
    const form = new FormData();
    form.append('file', blob, filename);
    if (filetype) form.append('filetype', filetype);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path || '/attach/upload', true);
    const current = im.session.get();
    if (current) xhr.setRequestHeader('Authorization', 'Bearer ' + current.token);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) onProgress(Math.round(e.loaded * 100 / e.total));
    };
    xhr.onload = function () {
      let reply = null;
      try { reply = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && reply && reply.code === 0 && reply.data) return resolve(reply.data);
      reject(im.refusal(reply, xhr.status));
    };
    xhr.onerror = function () { reject(new im.ApiError(t('err_network'), 0)); };
    xhr.send(form);
  });
}
