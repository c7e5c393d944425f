/* Draws a group's settings for its owner and admins (who may join, whether only admins
 * post), the requests to join it (approve, decline), the form that invites a friend to
 * it, and on the Groups tab the invitations I have had, each with the group's public
 * profile (name, picture, memo, member count: all a non-member sees). */
import {t, h, $, CMD, avatar, displayName} from './util.js';
import {state, me, groupOf} from './state.js';
import {on} from './events.js';
import {ROLE, roleIn, canManage} from './community.js';

// The group whose members the panel shows, and my role there.
let shown = {c: null, role: null, memberIds: []};

/* handlers: setJoinMode(c, mode), setAnnounce(c, on), loadJoinRequests(groupId),
 * approve(c, userId, name), reject(c, userId, name), invite(c, friend, name),
 * showMembers(c), acceptInvitation(invitation), dismissInvitation(invitation) */
export function mountCommunity(handlers) {
  $('join-mode').addEventListener('change', function () {
    if (shown.c) handlers.setJoinMode(shown.c, this.value);
  });
  $('announce-switch').addEventListener('change', function () {
    if (shown.c) handlers.setAnnounce(shown.c, this.checked);
  });
  $('invite-form').addEventListener('submit', function (e) {
    e.preventDefault();
    const friend = state.friends.find((f) => String(f.id) === this.elements.friend.value);
    if (shown.c && friend) handlers.invite(shown.c, friend, displayName(friend));
  });
  on('members', (detail) => {
    const group = groupOf(detail.c.dstid);
    const iOwn = !!group && Number(group.ownerid) === Number(me.id);
    shown = {c: detail.c, role: iOwn ? ROLE.OWNER : roleIn(detail.rows, me.id),
             memberIds: detail.rows.map((u) => Number(u.id))};
    drawRules();
    drawInviteForm();
    if (canManage(shown.role)) handlers.loadJoinRequests(detail.c.dstid);
    else $('join-requests').hidden = true;
  });
  on('groups', drawRules);
  on('friends', drawInviteForm);
  on('join-requests', (groupId) => {
    if (shown.c && shown.c.dstid === groupId && canManage(shown.role)) drawJoinRequests(handlers);
  });
  // My role changed (another device of the owner, or the owner's page): the panel follows.
  on('roles', (groupId) => {
    const open = shown.c && shown.c.dstid === groupId && !$('members-panel').hidden;
    if (open) handlers.showMembers(shown.c);
  });
  on('invitations', () => drawInvitations(handlers));
  on('open', () => { shown = {c: null, role: null, memberIds: []}; });
  document.addEventListener('imchat:lang', () => {
    drawInvitations(handlers);
    if (shown.c && canManage(shown.role)) drawJoinRequests(handlers);
    drawInviteForm();
  });
}

function drawRules() {
  if (!shown.c || shown.c.cmd !== CMD.GROUP) return;
  const group = groupOf(shown.c.dstid);
  if (!group) return;
  $('join-mode').value = group.joinmode || 'open';
  $('announce-switch').checked = !!Number(group.announce);
}

function button(className, text, label, onclick) {
  return h('button', {type: 'button', className: 'btn btn-small ' + className, text: text,
                      'aria-label': label, onclick: onclick});
}

function drawJoinRequests(handlers) {
  const c = shown.c;
  const rows = state.joinRequests[c.dstid] || [];
  const list = $('join-request-list');
  list.textContent = '';
  rows.forEach((r) => {
    const user = {id: r.userid, nickname: r.nickname, avatar: r.avatar};
    const name = displayName(user);
    list.appendChild(h('li', {className: 'list-item', dataset: {joinRequest: String(r.userid)}}, [
      avatar(user),
      h('div', {className: 'list-main'}, [
        h('div', {className: 'list-name', text: name}),
        h('div', {className: 'list-sub', text: r.memo || ('ID ' + r.userid)})
      ]),
      h('div', {className: 'request-actions'}, [
        button('btn-primary join-approve', t('approve'), t('approve') + ' ' + name,
               () => handlers.approve(c, r.userid, name)),
        button('join-reject', t('decline'), t('decline') + ' ' + name,
               () => handlers.reject(c, r.userid, name))
      ])
    ]));
  });
  $('join-requests').hidden = rows.length === 0;
}

// Any member may invite a friend who is not in the group yet.
function drawInviteForm() {
  const form = $('invite-form');
  const c = shown.c;
  const friends = c ? state.friends.filter((f) => shown.memberIds.indexOf(Number(f.id)) < 0) : [];
  form.hidden = !c || !shown.role || friends.length === 0;
  const select = form.elements.friend;
  const chosen = select.value;
  select.textContent = '';
  friends.forEach((f) => {
    select.appendChild(h('option', {value: String(f.id), text: displayName(f)}));
  });
  if (friends.some((f) => String(f.id) === chosen)) select.value = chosen;
}

function drawInvitations(handlers) {
  const list = $('invitation-list');
  list.textContent = '';
  state.invitations.forEach((invitation) => {
    const p = invitation.profile;
    const who = {id: p.id, kind: 'group', nickname: p.name, avatar: p.icon};
    const about = [t('invitation_from', {name: invitation.inviterName})];
    if (p.members) about.push(t('members_count', {n: p.members}));
    if (p.memo) about.push(p.memo);
    list.appendChild(h('li', {className: 'list-item', dataset: {invitation: String(p.id)}}, [
      avatar(who),
      h('div', {className: 'list-main'}, [
        h('div', {className: 'list-name', text: p.name || (t('group_id') + ' ' + p.id)}),
        h('div', {className: 'list-sub invitation-about', text: about.join(' · ')})
      ]),
      h('div', {className: 'request-actions'}, [
        button('btn-primary invitation-accept', t('join_invited'), t('join_invited') + ' ' + p.name,
               () => handlers.acceptInvitation(invitation)),
        button('invitation-dismiss', t('dismiss'), t('dismiss') + ' ' + p.name,
               () => handlers.dismissInvitation(invitation))
      ])
    ]));
  });
  $('invitations').hidden = state.invitations.length === 0;
}
