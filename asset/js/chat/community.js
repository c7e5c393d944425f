/* A group's roles and rules (issue 22): its join rule and "only admins post", the
 * admins the owner appoints, join requests the owner and admins approve or decline,
 * members an admin mutes for a while, and invitations to it, sent to friends and
 * received live (cmd 17). Questions ("Decline Bo?") are asked before these run
 * (main.js); what changed is announced, never drawn here. */
import {t, formatTime} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, groupOf} from './state.js';
import {loadGroups, loadMembers, updateGroup, joinGroup} from './contacts.js';

export const ROLE = {OWNER: 'owner', ADMIN: 'admin', MEMBER: 'member'};

// My role in a group from its member list (null when I am not in it).
export function roleIn(rows, userId) {
  const row = rows.find((u) => Number(u.id) === Number(userId));
  return row ? row.role || ROLE.MEMBER : null;
}

export function canManage(role) {
  return role === ROLE.OWNER || role === ROLE.ADMIN;
}


function groupName(groupId, given) {
  const group = groupOf(Number(groupId));
  return given || (group ? group.name : t('tab_groups') + ' ' + groupId);
}

/* ---------- the rules ---------- */

export function setJoinMode(c, mode) {
  return updateGroup(c, {joinmode: mode}, t('rules_saved'));
}

export function setAnnounce(c, on) {
  return updateGroup(c, {announce: on ? 1 : 0}, t('rules_saved'));
}

/* ---------- members ---------- */

export function setRole(c, user, name, role) {
  const said = t(role === ROLE.ADMIN ? 'made_admin' : 'removed_admin', {name: name});
  return api.act(() => api.setRole(c.dstid, user.id, role), said).then((done) => {
    if (done) loadMembers(c);
    return done;
  });
}

// `until`: ms since the epoch, -1 for ever, 0 to let them post again.
export function muteMember(c, user, name, until) {
  return api.act(() => api.muteMember(c.dstid, user.id, until),
             t(until ? 'member_muted' : 'member_unmuted', {name: name})).then((done) => {
    if (done) loadMembers(c);  // the list says who is muted
    return done;
  });
}

export function invite(c, friend, name) {
  return api.act(() => api.invite(c.dstid, friend.id), t('invited_done', {name: name}));
}

/* ---------- join requests (state.joinRequests: group id -> rows) ---------- */

// Loads may overlap (the panel opened, a request came live): only the latest counts.
const joinRequestLoads = {};

export function loadJoinRequests(groupId) {
  const load = joinRequestLoads[groupId] = (joinRequestLoads[groupId] || 0) + 1;
  return api.joinRequests(groupId).then((rows) => {
    if (load !== joinRequestLoads[groupId]) return;
    state.joinRequests[groupId] = rows;
    emit('join-requests', groupId);
  }, api.fail);
}

export function approve(c, userId, name) {
  return api.act(() => api.approveJoin(c.dstid, userId), t('join_approved_by_me', {name: name}))
    .then((done) => {
      loadJoinRequests(c.dstid);
      if (done) loadMembers(c);
      return done;
    });
}

export function reject(c, userId) {
  return api.act(() => api.rejectJoin(c.dstid, userId), t('join_rejected_by_me')).then((done) => {
    loadJoinRequests(c.dstid);
    return done;
  });
}

/* ---------- invitations to me (state.invitations), with the group's public profile ---------- */

function dropInvitation(groupId) {
  state.invitations = state.invitations.filter((i) => i.groupId !== Number(groupId));
  emit('invitations');
}

export function acceptInvitation(invitation) {
  return joinGroup(invitation.groupId).then((done) => {
    if (done) dropInvitation(invitation.groupId);
    return done;
  });
}

// Declined: the server forgets it (the inviter is not told).
export function dismissInvitation(invitation) {
  return api.declineInvitation(invitation.groupId).then(() => {
    dropInvitation(invitation.groupId);
    return true;
  }, (error) => {
    api.fail(error);
    return false;
  });
}

// The invitations that came while I was away (and those seen before a reload).
export function loadInvitations() {
  return api.invitations().then((rows) => {
    state.invitations = rows.map((row) => ({
      groupId: Number(row.community.id), inviterId: Number(row.inviterid),
      inviterName: row.nickname || '#' + row.inviterid, profile: row.community}));
    emit('invitations');
  }, () => { /* keep what we have */ });
}

function invited(frame) {
  const groupId = Number(frame.dstid);
  const inviter = state.users[frame.userid];
  const inviterName = inviter ? (inviter.nickname || '#' + inviter.id) : '#' + frame.userid;
  const invitation = {groupId: groupId, inviterId: Number(frame.userid), inviterName: inviterName,
                      profile: {id: groupId, name: frame.name, icon: frame.icon}};
  state.invitations = state.invitations.filter((i) => i.groupId !== groupId).concat([invitation]);
  emit('invitations');
  emit('notice', t('invitation_came', {name: inviterName, group: frame.name}));
  // A non-member sees the public profile only: name, picture, memo, member count.
  return api.groupProfile(groupId).then((profile) => {
    invitation.profile = profile;
    emit('invitations');
  }, () => {});
}

/* ---------- contact events (cmd 17) about a group ---------- */

function mutedText(frame, group) {
  const until = Number(frame.until) || 0;
  if (!until) return t('you_unmuted', {group: group});
  if (until === -1) return t('you_muted_forever', {group: group});
  return t('you_muted', {group: group, until: formatTime(until)});
}

// Returns true when `frame` was about a group.
export function onGroupEvent(frame) {
  const groupId = Number(frame.dstid);
  const group = groupName(groupId, frame.name);
  switch (frame.event) {
    case 'invited':
      invited(frame);
      return true;
    case 'joinrequest':
      emit('notice', t('join_request_came', {name: frame.nickname || '#' + frame.userid,
                                             group: group}));
      loadJoinRequests(groupId);
      return true;
    case 'approved':
      dropInvitation(groupId);
      loadGroups().then(() => emit('notice', t('join_approved', {group: groupName(groupId)})));
      return true;
    case 'rejected':
      // Not a member: the name comes from the group's public profile.
      api.groupProfile(groupId).then((profile) => profile.name, () => group)
        .then((name) => emit('notice', t('join_rejected', {group: name || group})));
      return true;
    case 'role': {
      const role = frame.role === ROLE.OWNER ? 'role_now_owner'
        : (frame.role === ROLE.ADMIN ? 'role_now_admin' : 'role_now_member');
      emit('notice', t(role, {group: group}));
      loadGroups();
      emit('roles', groupId);
      return true;
    }
    case 'muted':
      emit('notice', mutedText(frame, group));
      return true;
    case 'kicked':
      // The conversation stays open where it is: what was said there is still mine.
      emit('notice', t('you_kicked', {group: group}));
      loadGroups();
      return true;
  }
  return false;
}
