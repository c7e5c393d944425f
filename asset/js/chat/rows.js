/* A list of conversation rows that keeps its rows: each row is one element for the
 * life of the page, redrawn in place, so a change to one conversation touches only
 * its row (and moves it, if its place changed), never the rest of the list. */
import {h} from './util.js';

/* ul: the list element. order() -> the keys in the order they show; fill(li, key)
 * draws a row's content; pick(key) is what choosing a row does. */
export function keyedList(ul, order, fill, pick) {
  const rows = new Map();

  function rowFor(key) {
    let li = rows.get(key);
    if (!li) {
      li = h('li', {className: 'list-item', dataset: {conv: key}, tabindex: '0', role: 'button'});
      li.addEventListener('click', () => pick(key));
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(key); });
      rows.set(key, li);
    }
    return li;
  }

  function drop(key) {
    const li = rows.get(key);
    if (li) li.remove();
    rows.delete(key);
  }

  // Every row again: added, dropped, redrawn and put in order.
  function sync() {
    const keys = order();
    const wanted = new Set(keys);
    Array.from(rows.keys()).forEach((key) => { if (!wanted.has(key)) drop(key); });
    let at = ul.firstChild;
    keys.forEach((key) => {
      const li = rowFor(key);
      fill(li, key);
      if (li === at) at = at.nextSibling;
      else ul.insertBefore(li, at);
    });
  }

  // One row: redrawn in place and, if its place changed, moved there. The others
  // were in order before, so the row belongs just before the one after it.
  function update(key) {
    const keys = order();
    const i = keys.indexOf(key);
    if (i < 0) return drop(key);
    // Other rows came or went unannounced (the list was never drawn): all of it.
    if (rows.size !== keys.length - (rows.has(key) ? 0 : 1)) return sync();
    const next = i + 1 < keys.length ? rows.get(keys[i + 1]) : null;
    const li = rowFor(key);
    fill(li, key);
    if (li.parentNode !== ul || li.nextSibling !== next) ul.insertBefore(li, next);
  }

  return {sync: sync, update: update, count: () => rows.size};
}
