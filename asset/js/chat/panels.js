/* The panels over the conversation: a group's members with their roles (add, hand over,
 * appoint an admin, mute, remove) and leaving it, a friend's profile and unfriending;
 * and the yes-or-no question asked before any of those. */
import {t, h, $, CMD, avatar, displayName} from './util.js';
import {state, me, userOf, isFriend, groupOf} from './state.js';
import {on} from './events.js';
import {ROLE, roleIn, canManage} from './community.js';

// The members last drawn, so that leaving knows whether the owner must hand over first.
let drawnMembers = {c: null, rows: []};

/* handlers: showMembers(c) (loads them: 'members' draws), addFriend(id),
 * transfer(c, user, name), kick(c, user, name), setRole(c, user, name, role),
 * muteMember(c, user, name), leave(c), unfriend(c),
 * mustTransfer() -> a promise (says the owner must hand over first), rename(c, name),
 * changeIcon(c, file) */
export function mountPanels(handlers) {
  const hideBoth = () => {
    $('members-panel').hidden = true;
    $('profile-panel').hidden = true;
  };
  $('members-btn').addEventListener('click', () => {
    const c = state.open;
    if (!c || c.cmd !== CMD.GROUP) return;
    $('members-group-id').textContent = String(c.dstid);
    $('members-panel').hidden = false;
    handlers.showMembers(c);
  });
  $('members-close').addEventListener('click', () => { $('members-panel').hidden = true; });
  // The owner of a group with other members cannot leave it: they are offered the
  // hand-over first (the focus goes to the first "Make owner").
  $('leave-btn').addEventListener('click', () => {
    const c = state.open;
    if (!c || c.cmd !== CMD.GROUP) return;
    const group = groupOf(c.dstid);
    const iOwn = !!group && Number(group.ownerid) === Number(me.id);
    if (!iOwn) return handlers.leave(c);
    // Who is still in it, as the server has it now (members may have left meanwhile).
    Promise.resolve(handlers.showMembers(c)).then(() => {
      if (drawnMembers.c !== c || drawnMembers.rows.length <= 1) return handlers.leave(c);
      return handlers.mustTransfer().then(() => {
        const first = $('member-list').querySelector('.member-transfer');
        if (first) first.focus();
      });
    });
  });
  $('rename-group-form').addEventListener('submit', function (e) {
    e.preventDefault();
    const name = this.elements.name.value.trim();
    if (name && state.open && state.open.cmd === CMD.GROUP) handlers.rename(state.open, name);
  });
  $('group-icon-input').addEventListener('change', function () {
    if (this.files[0] && state.open) handlers.changeIcon(state.open, this.files[0]);
    this.value = '';
  });
  $('profile-btn').addEventListener('click', drawProfile);
  $('convo-title').addEventListener('click', () => {
    if (state.open && state.open.cmd === CMD.USER) drawProfile();
  });
  $('profile-close').addEventListener('click', () => { $('profile-panel').hidden = true; });
  $('unfriend-btn').addEventListener('click', () => {
    if (state.open && state.open.cmd === CMD.USER) handlers.unfriend(state.open);
  });
  on('members', (detail) => drawMembers(detail.c, detail.rows, handlers));
  on('friends', () => { if (!$('profile-panel').hidden) drawProfile(); });
  on('open', hideBoth);
  on('forgotten', hideBoth);
}

function drawMembers(c, rows, handlers) {
  const list = $('member-list');
  const group = groupOf(c.dstid);
  const owner = group ? Number(group.ownerid) : 0;
  const iOwn = owner === Number(me.id);
  const myRole = iOwn ? ROLE.OWNER : roleIn(rows, me.id);
  drawnMembers = {c: c, rows: rows};
  $('group-settings').hidden = !canManage(myRole);
  if (canManage(myRole) && group) $('rename-group-form').elements.name.value = group.name || '';
  const leave = $('leave-btn');
  leave.setAttribute('data-i18n', iOwn && rows.length > 1 ? 'choose_owner' : 'leave_group');
  leave.textContent = t(leave.getAttribute('data-i18n'));
  list.textContent = '';
  rows.forEach((u) => {
    const name = displayName(u);
    const actions = h('div', {className: 'member-actions'});
    const button = (className, text, onclick) => actions.appendChild(
      h('button', {type: 'button', className: 'btn btn-small' + className, text: text, onclick: onclick}));
    if (u.id !== me.id && !isFriend(u.id)) {
      button('', t('add_as_friend'), () => handlers.addFriend(u.id));
    }
    const role = u.id === owner ? ROLE.OWNER : (u.role || ROLE.MEMBER);
    if (iOwn && u.id !== me.id) {
      button(' member-transfer', t('transfer'), () => handlers.transfer(c, u, name));
      if (role === ROLE.ADMIN) {
        button(' member-unadmin', t('remove_admin'),
               () => handlers.setRole(c, u, name, ROLE.MEMBER));
      } else {
        button(' member-admin', t('make_admin'), () => handlers.setRole(c, u, name, ROLE.ADMIN));
      }
    }
    // The owner acts on anyone else; an admin on plain members.
    if (u.id !== me.id && (iOwn || (myRole === ROLE.ADMIN && role === ROLE.MEMBER))) {
      button(' member-mute', t('mute_member'), () => handlers.muteMember(c, u, name));
      button(' btn-danger member-kick', t('kick'), () => handlers.kick(c, u, name));
    }
    list.appendChild(h('li', {className: 'list-item', dataset: {userId: String(u.id)}}, [
      avatar(u, u.online ? 'is-online' : ''),
      h('div', {className: 'list-main'}, [
        h('div', {className: 'list-name'}, [
          name + (u.id === me.id ? ' (' + t('you') + ')' : ''),
          role === ROLE.OWNER ? h('span', {className: 'owner-tag', text: t('owner')}) : null,
          role === ROLE.ADMIN ? h('span', {className: 'owner-tag admin-tag', text: t('admin')}) : null
        ]),
        h('div', {className: 'list-sub', text: 'ID ' + u.id + (u.online ? ' · ' + t('online') : '') +
                  (Number(u.muteuntil) ? ' · ' + t('muted_mark') : '')})
      ]),
      actions
    ]));
  });
  $('members-panel').querySelector('.bar-title').textContent =
    t('members') + ' · ' + t('members_count', {n: rows.length});
}

function drawProfile() {
  const c = state.open;
  if (!c || c.cmd !== CMD.USER) return;
  const friend = userOf(c.dstid);
  const fresh = avatar(friend, 'avatar-lg' + (friend.online ? ' is-online' : ''));
  fresh.id = 'profile-avatar';
  $('profile-avatar').replaceWith(fresh);
  $('profile-name').textContent = displayName(friend);
  $('profile-id').textContent = String(friend.id);
  $('profile-online').textContent = isFriend(friend.id) ? (friend.online ? t('online') : t('offline')) : '';
  $('unfriend-btn').hidden = !isFriend(friend.id);
  $('profile-panel').hidden = false;
}

// Resolves true if the person said yes.
export function confirmFirst(question, okLabel) {
  const dialog = $('confirm');
  $('confirm-text').textContent = question;
  $('confirm-ok').textContent = okLabel || t('ok');
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
    dialog.showModal();
  });
}
