/* The frame around the lists: the tab bar, the list's header with its "+" forms (add a
 * friend; create or join a group), and the connection banner. */
import {t, $} from './util.js';
import {state} from './state.js';
import {on} from './events.js';

const TABS = ['chats', 'friends', 'groups', 'me'];

/* handlers: showTab(name); addFriend(fields), createGroup(name), joinGroup(id), each
 * resolving true once done (the form then empties). */
export function mountShell(handlers) {
  document.querySelectorAll('.tabbar .tab').forEach((el) => {
    el.addEventListener('click', () => handlers.showTab(el.dataset.tab));
  });
  $('list-action').addEventListener('click', () => toggleForm());
  submitted('add-friend-form', 'target', (form, value) => {
    const fields = {};
    fields[form.elements.by.value] = value;
    const memo = form.elements.memo.value.trim();
    if (memo) fields.memo = memo;
    return Promise.resolve(handlers.addFriend(fields)).then((done) => {
      if (done) form.elements.memo.value = '';
      return done;
    });
  });
  submitted('create-group-form', 'name', (form, name) => handlers.createGroup(name));
  submitted('join-group-form', 'dstid', (form, id) => handlers.joinGroup(id));
  on('tab', drawTab);
  document.addEventListener('imchat:lang', () => drawTab(state.tab));
}

// The "+" form of the tab shown (add a friend; create or join a group), opened or
// closed (`open`: opened whatever it was), with the focus in its first field.
export function toggleForm(open) {
  const form = state.tab === 'friends' ? $('add-friend-form') : $('group-forms');
  form.hidden = open ? false : !form.hidden;
  $('list-action').setAttribute('aria-expanded', String(!form.hidden));
  const first = form.querySelector('input');
  if (!form.hidden && first) first.focus();
}

// A one-field form: `act(form, value)` runs for a value, and the field empties once
// it resolves true.
function submitted(formId, field, act) {
  const form = $(formId);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = form.elements[field].value.trim();
    if (!value) return;
    Promise.resolve(act(form, value)).then((done) => {
      if (done) form.elements[field].value = '';
    });
  });
}

function drawTab(tab) {
  const app = $('app');
  app.dataset.tab = tab;
  TABS.forEach((name) => { $('tab-' + name).hidden = name !== tab; });
  document.querySelectorAll('.tabbar .tab').forEach((el) => {
    el.classList.toggle('active', el.dataset.tab === tab);
    el.setAttribute('aria-current', el.dataset.tab === tab ? 'page' : 'false');
  });
  const title = $('list-title');
  title.setAttribute('data-i18n', 'tab_' + tab);
  title.textContent = t('tab_' + tab);
  $('list-action').hidden = tab === 'me' || tab === 'chats';
  $('list-action').setAttribute('aria-expanded', 'false');
  $('add-friend-form').hidden = true;
  $('group-forms').hidden = true;
}

// The connection's state above both panes, pushing them down (empty: connected).
export function setBanner(text) {
  const banner = $('conn-banner');
  banner.textContent = text || '';
  banner.hidden = !text;
  $('app').classList.toggle('offline', !!text);
}
