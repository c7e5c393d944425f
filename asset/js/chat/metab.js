/* The Me tab: my avatar (a new one on click), name, id, mobile and bio, the nickname
 * and bio forms, changing the password, the theme (system, light, dark: kept on this
 * device), the language and logging out. */
import {im, $, avatar, displayName} from './util.js';
import {me} from './state.js';
import {on} from './events.js';

/* handlers: saveNickname(text), saveBio(text), changePassword(current, next) -> a
 * promise of true once done, changeAvatar(file), logout() */
export function mountMe(handlers) {
  $('nickname-form').addEventListener('submit', function (e) {
    e.preventDefault();
    const nickname = this.elements.nickname.value.trim();
    if (nickname) handlers.saveNickname(nickname);
  });
  $('bio-form').addEventListener('submit', function (e) {
    e.preventDefault();
    handlers.saveBio(this.elements.memo.value.trim());
  });
  $('password-form').addEventListener('submit', function (e) {
    e.preventDefault();
    const form = this;
    Promise.resolve(handlers.changePassword(form.elements.passwd.value,
                                            form.elements.newpasswd.value)).then((done) => {
      if (done) form.reset();
    });
  });
  const theme = $('theme-select');
  theme.value = im.theme();
  theme.addEventListener('change', () => im.setTheme(theme.value));
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
  $('me-bio').textContent = me.memo || '';
  $('nickname-form').elements.nickname.value = me.nickname || '';
  $('bio-form').elements.memo.value = me.memo || '';
}
