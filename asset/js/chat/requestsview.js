/* Draws who may reach me: the friend requests above the friend list (accept or decline
 * one to me; one from me waits), their count on the Friends tab, and on the Me tab the
 * people I block (unblock). The profile panel's Block / Unblock buttons show which
 * applies; its Report button reports the person. */
import {t, h, $, avatar, displayName} from './util.js';
import {state} from './state.js';
import {on} from './events.js';

/* handlers: accept(userId), decline(userId), block(userId, name), unblock(userId, name),
 * report(userId, name);
 * the profile panel's user comes from profileUser() (null when none is shown). */
export function mountRequests(handlers, profileUser) {
  on('requests', drawRequests.bind(null, handlers));
  on('blocked', () => {
    drawBlocked(handlers);
    drawProfileButtons(profileUser());
  });
  on('friends', () => drawProfileButtons(profileUser()));
  on('open', () => drawProfileButtons(profileUser()));
  document.addEventListener('imchat:lang', () => {
    drawRequests(handlers);
    drawBlocked(handlers);
  });
  $('block-btn').addEventListener('click', () => {
    const user = profileUser();
    if (user) handlers.block(user.id, displayName(user));
  });
  $('unblock-btn').addEventListener('click', () => {
    const user = profileUser();
    if (user) handlers.unblock(user.id, displayName(user));
  });
  $('report-user-btn').addEventListener('click', () => {
    const user = profileUser();
    if (user) handlers.report(user.id, displayName(user));
  });
}

function button(className, text, label, onclick) {
  return h('button', {type: 'button', className: 'btn btn-small ' + className, text: text,
                      onclick: onclick, 'aria-label': label});
}

function drawRequests(handlers) {
  const list = $('request-list');
  list.textContent = '';
  state.requests.forEach((r) => {
    const user = {id: r.userid, nickname: r.nickname, avatar: r.avatar};
    const name = displayName(user);
    const incoming = r.direction === 'in';
    const actions = h('div', {className: 'request-actions'}, incoming ? [
      button('btn-primary request-accept', t('accept'), t('accept') + ' ' + name,
             () => handlers.accept(r.userid)),
      button('request-decline', t('decline'), t('decline') + ' ' + name,
             () => handlers.decline(r.userid))
    ] : [h('span', {className: 'list-sub', text: t('request_waiting')})]);
    list.appendChild(h('li', {className: 'list-item', dataset: {requestFrom: String(r.userid),
                                                               direction: r.direction}}, [
      avatar(user),
      h('div', {className: 'list-main'}, [
        h('div', {className: 'list-name', text: name}),
        h('div', {className: 'list-sub request-memo', text: r.memo || ''})
      ]),
      actions
    ]));
  });
  $('requests').hidden = state.requests.length === 0;
  const count = state.requests.filter((r) => r.direction === 'in').length;
  const badge = document.querySelector('.tabbar .tab[data-tab=friends] .badge');
  badge.hidden = !count;
  badge.textContent = count > 99 ? '99+' : String(count);
  badge.setAttribute('aria-label', t('requests_count', {n: count}));
}

function drawBlocked(handlers) {
  const list = $('blocked-list');
  list.textContent = '';
  state.blocked.forEach((user) => {
    const name = displayName(user);
    list.appendChild(h('li', {className: 'list-item', dataset: {blocked: String(user.id)}}, [
      avatar(user),
      h('div', {className: 'list-main'}, [h('div', {className: 'list-name', text: name})]),
      button('blocked-unblock', t('unblock'), t('unblock') + ' ' + name,
             () => handlers.unblock(user.id, name))
    ]));
  });
  $('blocked').hidden = state.blocked.length === 0;
}

function drawProfileButtons(user) {
  if (!user) return;
  const blocked = state.blocked.some((u) => Number(u.id) === Number(user.id));
  $('block-btn').hidden = blocked;
  $('unblock-btn').hidden = !blocked;
}
