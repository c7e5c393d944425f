/* The address names what is on screen: `#/<tab>` for a list tab, and `#/c/<cmd>/<dstid>`
 * (on the Chats tab) or `#/<tab>/c/<cmd>/<dstid>` for an open conversation. So a reload
 * opens the same conversation, back and forward move between conversations, and a
 * link (a notification, a search result) can open one. */
import {on} from './events.js';
import {state} from './state.js';

const TABS = ['chats', 'friends', 'groups', 'me'];

// '#/friends/c/10/2' -> {tab: 'friends', key: '10:2'}; null if it names nothing.
export function parseRoute(hash) {
  const m = /^#\/(?:(chats|friends|groups|me)\/?)?(?:c\/(1[01])\/(\d{1,19}))?$/.exec(hash || '');
  if (!m || (!m[1] && !m[2])) return null;
  return {tab: m[1] || 'chats', key: m[2] ? m[2] + ':' + m[3] : null};
}

export function routeOf(tab, c) {
  if (!c) return '#/' + tab;
  return (tab === 'chats' ? '#/' : '#/' + tab + '/') + 'c/' + c.cmd + '/' + c.dstid;
}

/* handlers: showTab(name), open(key), close(). Applies the address now (a reload or a
 * link) and whenever it changes (back, forward). */
export function mountRoute(handlers) {
  let applying = false;
  const apply = () => {
    const route = parseRoute(window.location.hash);
    if (!route) return;
    applying = true;
    try {
      if (state.tab !== route.tab) handlers.showTab(route.tab);
      if (route.key && (!state.open || state.open.key !== route.key)) handlers.open(route.key);
      else if (!route.key && state.open) handlers.close();
    } finally {
      applying = false;
    }
  };
  const write = () => {
    if (applying || !TABS.includes(state.tab)) return;
    const hash = routeOf(state.tab, state.open);
    if (window.location.hash !== hash) window.location.hash = hash;
  };
  window.addEventListener('hashchange', apply);
  on('tab', write);
  on('open', write);
  apply();
  write();
}
