/* The Me tab: my avatar (a new one on click), name, id and mobile, the nickname form
 * and logging out. */
import {$, avatar, displayName} from './util.js';
import {me} from './state.js';
import {on} from './events.js';

// handlers: saveNickname(text), changeAvatar(file), logout()
export function mountMe(handlers) {
  $('nickname-form').addEventListener('submit', function (e) {
    e.preventDefault();
    const nickname = this.elements.nickname.value.trim();
    if (nickname) handlers.saveNickname(nickname);
  });
  $('avatar-input').addEventListener('change', function () {
    handlers.changeAvatar(this.files[0]);
    this.value = '';
  });
  $('logout-btn').addEventListener('click', handlers.logout);
  on('me', drawMe);
  on('tab', (tab) => { if (tab === 'me') drawMe(); });
}

function drawMe() {
  const fresh = avatar(me, 'avatar-lg');
  fresh.id = 'me-avatar';
  $('me-avatar').replaceWith(fresh);
  $('me-name').textContent = displayName(me);
  $('me-id').textContent = String(me.id);
  $('me-mobile').textContent = me.mobile || '';
  $('nickname-form').elements.nickname.value = me.nickname || '';
}
