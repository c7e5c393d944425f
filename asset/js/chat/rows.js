/* A list of conversation rows that keeps its rows: each row is one element for the
 * life of the page, redrawn in place, so a change to one conversation touches only
 * its row (and moves it, if its place changed), never the rest of the list. Within a
 * row only what differs is replaced: a click that lands while the list is refreshed
 * (a press on one element, the release on its replacement) would otherwise be lost. */
import {h} from './util.js';

/* ul: the list element. order() -> the keys in the order they show; draw(key) -> the
 * row as it should be now (an <li>, whose class the kept row takes and whose children
 * its one button takes: a list's items stay list items, and the row is one control
 * with one name for a screen reader and the keyboard); pick(key) is what choosing a
 * row does. */
export function keyedList(ul, order, draw, pick) {
  const rows = new Map();

  function rowFor(key) {
    let li = rows.get(key);
    if (!li) {
      const button = h('button', {type: 'button', className: 'row-btn'});
      button.addEventListener('click', () => pick(key));
      li = h('li', {className: 'list-item keyed', dataset: {conv: key}}, [button]);
      rows.set(key, li);
    }
    return li;
  }

  function fill(li, key) {
    const fresh = draw(key);
    const className = fresh.className + ' keyed';
    if (li.className !== className) li.className = className;
    const button = li.firstChild;
    const current = fresh.getAttribute('aria-current');
    if (current) button.setAttribute('aria-current', current);
    else button.removeAttribute('aria-current');
    patch(button, fresh);
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

// `el`'s children become `fresh`'s, replacing only the nodes that differ.
function patch(el, fresh) {
  const wanted = Array.from(fresh.childNodes);
  wanted.forEach((node, i) => {
    const old = el.childNodes[i];
    if (!old) el.appendChild(node);
    else if (old.isEqualNode(node)) return;
    else if (sameShell(old, node)) patch(old, node);
    else old.replaceWith(node);
  });
  while (el.childNodes.length > wanted.length) el.lastChild.remove();
}

// Two elements that differ only inside.
function sameShell(a, b) {
  if (a.nodeType !== Node.ELEMENT_NODE || b.nodeType !== Node.ELEMENT_NODE) return false;
  if (a.tagName !== b.tagName || a.attributes.length !== b.attributes.length) return false;
  return Array.from(a.attributes).every((attr) => b.getAttribute(attr.name) === attr.value);
}
