/* The page's events: what changed in what the page knows, announced by the module that
 * changed it and drawn by the views that main.js subscribes. The modules that hold
 * state never call a view, so drawing can change without touching them, and a view
 * redraws only what an event names (one conversation's row, one message).
 *
 * The names are fixed here, with what their detail is: emitting or listening to any
 * other name throws, so a typo fails loudly instead of going unheard. */

const NAMES = {
  // state.js
  'me': 'my own profile changed (no detail)',
  'profile': 'a user profile arrived: the user id',
  'tab': 'the list tab shown changed: its name',
  'open': 'the conversation on screen changed: it, or null when closed',
  'conversation': 'a conversation\'s row changed (last message, unread count): it',
  'conversations': 'many conversations changed at once (no detail)',
  'forgotten': 'a conversation left the lists (unfriended, left the group): it',
  // mutes.js
  'muted': 'a conversation was muted or unmuted here: it',
  // contacts.js
  'friends': 'the friend list was loaded again (no detail)',
  'groups': 'the group list was loaded again (no detail)',
  'members': 'a group\'s member list arrived: {c, rows}',
  // requests.js
  'requests': 'the pending friend requests (to me and from me) changed (no detail)',
  'blocked': 'the people I block changed (no detail)',
  // community.js
  'join-requests': 'the requests to join a group arrived: the group id',
  'invitations': 'the groups I am invited to changed (no detail)',
  'roles': 'my role in a group changed: the group id',
  // messages.js
  'message': 'a message joined a conversation (received, or sent here): {c, msg}',
  'message-state': 'one of my messages was acknowledged or refused: the message',
  'message-dropped': 'my local copy of a message the stream had already shown: it',
  'recalled': 'a message was taken back: the message',
  // rich.js
  'edited': 'a message\'s text was edited: the message',
  'reacted': 'a message\'s reactions changed: the message',
  'draft': 'what the next message answers or mentions changed: the conversation',
  'mentioned': 'a conversation\'s count of unread mentions of me changed: it',
  'history': 'a page of history started loading, failed or arrived: {c, older, arrived}',
  // reads.js, presence.js
  'receipts': 'the friend has read further in a 1:1 conversation: it',
  'typing': 'a user started or stopped typing to me: the user id',
  'presence': 'a user came online or went offline: the user id',
  // media.js
  'upload': 'upload progress: a percentage, or null when done',
  'recording': 'a voice note\'s recording: {seconds}, or null when it ends',
  // any module
  'notice': 'something to tell the person in passing: the text',
  'session-over': 'the login is no longer good (no detail)'
};

const listeners = new Map(Object.keys(NAMES).map((name) => [name, []]));

function known(name) {
  const list = listeners.get(name);
  if (!list) throw new Error('unknown event: ' + name);
  return list;
}

export function on(name, listener) {
  known(name).push(listener);
}

// Every listener hears the event even if one throws (the error is reported as an
// uncaught one would be).
export function emit(name, detail) {
  known(name).slice().forEach((listener) => {
    try { listener(detail); } catch (error) { window.reportError(error); }
  });
}
