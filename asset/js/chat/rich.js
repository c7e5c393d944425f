/* Richer messages, the page's side (docs/protocol.md, "Richer messages"): edits (cmd 18)
 * and reactions (cmd 19) in and out, what the next message answers and mentions (the
 * draft), mentions of me counted per conversation, and files. It changes what the page
 * knows and announces it ('edited', 'reacted', 'draft', 'mentioned'); views draw. */
import {t, CMD, MEDIA, randomTag, ackText} from './util.js';
import * as conn from './conn.js';
import * as api from './api.js';
import {emit} from './events.js';
import {state, me, conv, convKey, keyOfMessage, advanceSince, touched} from './state.js';

// The server's IMCHAT_EDIT_SECONDS when the page names it (0: no limit), else its default.
const editMeta = document.querySelector('meta[name="imchat-edit-seconds"]');
export const EDIT_SECONDS = editMeta ? Number(editMeta.getAttribute('content')) || 0 : 2 * 24 * 3600;
// The usual six, first in the picker.
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

const isMe = (id) => Number(id) === Number(me.id);

function eventId(prefix) {
  state.localSeq += 1;
  return prefix + Date.now().toString(36) + '-' + randomTag() + '-' + state.localSeq;
}

// The conversation an event (cmd 14, 18, 19) is about, as seen from me.
function convOfEvent(frame) {
  const cmd = Number(frame.target) === CMD.GROUP ? CMD.GROUP : CMD.USER;
  return conv(keyOfMessage({cmd: cmd, userid: frame.userid, dstid: frame.dstid}));
}

/* ---------- edit (cmd 18) ---------- */

export function canEdit(msg) {
  return isMe(msg.userid) && !!msg.msgid && !msg.recalled && Number(msg.media) === MEDIA.TEXT &&
    (!EDIT_SECONDS || Date.now() - Number(msg.createat || msg.localTime) < EDIT_SECONDS * 1000);
}

export function edit(msg, text) {
  if (!canEdit(msg)) return emit('notice', t('edit_too_late'));
  if (!text.trim() || text === msg.content) return;
  const c = conv(keyOfMessage(msg));
  conn.send({id: eventId('e'), cmd: CMD.EDIT, msgid: msg.msgid, content: text}, (ack) => {
    if (ack.code !== 0) return emit('notice', ack.reason || ack.msg ? ackText(ack) : t('edit_too_late'));
    if (ack.msgid) advanceSince(Number(ack.msgid));
    applyEdit(c, msg.msgid, text, ack.createat || Date.now());
  });
}

export function onEdit(frame) {
  advanceSince(Number(frame.msgid));
  applyEdit(convOfEvent(frame), Number(frame.editedmsgid), frame.content, frame.createat);
}

function applyEdit(c, msgid, content, at) {
  [c.byId[msgid], c.last && c.last.msgid === msgid ? c.last : null].forEach((msg) => {
    if (!msg || msg.recalled) return;
    msg.content = content;
    msg.editedat = at;
  });
  if (c.byId[msgid]) emit('edited', c.byId[msgid]);
  touched(c);
}

/* ---------- reactions (cmd 19) ---------- */

export function myReaction(msg) {
  const all = msg.reactions || {};
  return Object.keys(all).filter((emoji) => all[emoji].mine)[0] || '';
}

// Set `emoji` as mine on `msg`, or take it off when it is mine already.
export function react(msg, emoji) {
  if (!msg.msgid || msg.recalled) return;
  const mine = myReaction(msg);
  const on = mine === emoji ? 0 : 1;
  conn.send({id: eventId('x'), cmd: CMD.REACTION, msgid: msg.msgid, emoji: emoji, on: on}, (ack) => {
    if (ack.code !== 0) return emit('notice', ackText(ack));
    if (ack.msgid) advanceSince(Number(ack.msgid));
    applyReaction(msg, {emoji: emoji, on: on, replaced: on ? mine : '', userid: me.id});
  });
}

export function onReaction(frame) {
  advanceSince(Number(frame.msgid));
  const msg = convOfEvent(frame).byId[Number(frame.reactedmsgid)];
  if (msg) applyReaction(msg, frame);
}

function applyReaction(msg, change) {
  const all = msg.reactions = Object.assign({}, msg.reactions);
  const mine = isMe(change.userid);
  const add = (emoji, n) => {
    const entry = all[emoji] = Object.assign({count: 0, mine: 0}, all[emoji]);
    entry.count = Math.max(0, entry.count + n);
    if (mine) entry.mine = n > 0 ? 1 : 0;
    if (!entry.count) delete all[emoji];
  };
  if (change.replaced) add(change.replaced, -1);
  add(change.emoji, Number(change.on) ? 1 : -1);
  emit('reacted', msg);
}

/* ---------- the draft: replying and mentioning ---------- */

// What the open conversation's next message answers, and whom it mentions (id -> name).
export function draftOf(c) {
  if (!c.draft) c.draft = {reply: null, mentions: {}};
  return c.draft;
}

export function replyTo(c, msg) {
  draftOf(c).reply = msg;
  emit('draft', c);
}

export function mention(c, id, name) {
  draftOf(c).mentions[id] = name;
}

export function clearDraft(c) {
  c.draft = null;
  emit('draft', c);
}

// The fields the draft adds to a message of `text`: a mention stays only while its
// @name is still in the text.
export function draftFields(c, text) {
  const draft = draftOf(c);
  const fields = {};
  if (draft.reply && draft.reply.msgid) fields.replyto = draft.reply.msgid;
  const ids = Object.keys(draft.mentions).filter((id) => text.indexOf('@' + draft.mentions[id]) >= 0);
  if (c.cmd === CMD.GROUP && ids.length) {
    fields.mentions = ids.indexOf('-1') >= 0 ? [-1] : ids.map(Number);
  }
  return fields;
}

/* ---------- mentions of me ---------- */

export function mentionsMe(msg) {
  const list = msg.mentions || [];
  return !isMe(msg.userid) && (list.indexOf(-1) >= 0 || list.indexOf(Number(me.id)) >= 0);
}

// A message arrived in `c`: one more unread mention when it calls me.
export function countMention(c, msg) {
  if (!mentionsMe(msg) || state.open === c) return;
  c.mentioned = (c.mentioned || 0) + 1;
  emit('mentioned', c);
}

export function setMentioned(c, count) {
  if ((c.mentioned || 0) === count) return;
  c.mentioned = count;
  emit('mentioned', c);
}

/* ---------- files (media 10) ---------- */

// Resolves with {url, name, size} of a file kept by the server; progress as 'upload'.
export function uploadFile(file) {
  emit('upload', 0);
  return api.upload(file, file.name || 'file', null, (pct) => emit('upload', pct),
                    '/attach/file').then((data) => {
    emit('upload', null);
    return data;
  }, (error) => {
    emit('upload', null);
    if (error.status === 401) api.fail(error);
    else emit('notice', t('upload_failed', {why: error.message}));
    throw error;
  });
}

// The conversations a message may be forwarded to: my friends' and my groups'.
export function forwardTargets() {
  return state.friends.map((f) => conv(convKey(CMD.USER, f.id)))
    .concat(state.groups.map((g) => conv(convKey(CMD.GROUP, g.id))));
}
