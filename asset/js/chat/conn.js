/* The /chat WebSocket: connecting, heartbeats, acknowledgements, resending what a
 * dropped connection may have lost, and reconnecting with backoff. It knows nothing of
 * conversations: frames go to the handlers that `start` is given. */
import {CMD} from './util.js';

const HEARTBEAT_MS = 30000;
// Reconnect after 0.5 s, doubling to at most 15 s, with jitter so that a restarted
// server is not hit by every client in the same instant.
const BACKOFF_FIRST_MS = 500, BACKOFF_MAX_MS = 15000, STABLE_MS = 10000;

let hooks = null;
let socket = null;
let retries = 0;
let reconnectTimer = null, stableTimer = null, heartbeatTimer = null;
let stopped = false;
// Frames awaiting their acknowledgement, by id, in the order they were sent:
// {frame, written, onAck}.
const outbox = new Map();

/* hooks: url() -> the URL to open; protocols() -> the subprotocols to offer (the token
 * goes there, not in the URL, which proxies log); onConnecting() before a retry; onOpen();
 * onFrame(frame) for every frame but acknowledgements; onClose() whenever the socket
 * closes, then onDown(delayMs) when a retry is scheduled, onRefused() when the
 * server closed it because the login is over (4401, 4403), or onReplaced() when
 * too many connections of this user are open elsewhere (4429). */
export function start(handlers) {
  hooks = handlers;
  connect();
}

export function isOpen() { return !!socket && socket.readyState === WebSocket.OPEN; }
export function retrying() { return retries > 0; }

// Close for good (logout, session over): no reconnect.
export function stop() {
  stopped = true;
  clearTimeout(reconnectTimer);
  if (socket) socket.close(1000);
}

// A frame that is acknowledged: shown at once by the caller, written now or when the
// socket opens, and written again on the next connection if the one it went out on
// drops before the acknowledgement. Its id is an idempotency key (long, unique), so
// the server stores it at most once and acknowledges a repeat with what it has.
export function send(frame, onAck) {
  const entry = {frame: frame, written: false, onAck: onAck};
  outbox.set(frame.id, entry);
  write(entry);
}

// A frame with no acknowledgement (read position, typing): sent now or never.
export function sendNow(frame) {
  if (!isOpen()) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

// Back on the network: try now rather than at the end of the backoff.
window.addEventListener('online', () => {
  if (!socket && !stopped && hooks) {
    retries = 0;
    connect();
  }
});

function write(entry) {
  if (!isOpen()) return;
  socket.send(JSON.stringify(entry.frame));
  entry.written = true;
}

function connect() {
  clearTimeout(reconnectTimer);
  if (retries) hooks.onConnecting();
  const ws = new WebSocket(hooks.url(), hooks.protocols ? hooks.protocols() : []);
  socket = ws;
  ws.onopen = () => {
    // Back off afresh only once a connection has lasted: a server that accepts and
    // at once closes (shutting down, overloaded) must not be hammered.
    clearTimeout(stableTimer);
    stableTimer = setTimeout(() => { retries = 0; }, STABLE_MS);
    clearInterval(heartbeatTimer);
    heartbeatTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({cmd: CMD.HEART}));
    }, HEARTBEAT_MS);
    outbox.forEach((entry) => { if (!entry.written) write(entry); });
    hooks.onOpen();
  };
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (!frame || typeof frame !== 'object') return;
    if (frame.cmd === CMD.ACK) return onAck(frame);
    hooks.onFrame(frame);
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(heartbeatTimer);
    clearTimeout(stableTimer);
    // Written to a socket that closed before the acknowledgement: the server may or
    // may not have it, so it goes again, with the same id.
    outbox.forEach((entry) => { entry.written = false; });
    hooks.onClose();
    if (stopped) return;
    if (event.code === 4401 || event.code === 4403) return hooks.onRefused();
    // Closed because this user opened more connections elsewhere: reconnecting would
    // only close another one, so wait for the person to reload.
    if (event.code === 4429) return hooks.onReplaced();
    let delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, retries));
    delay = Math.round(delay * (0.75 + Math.random() * 0.5));
    retries += 1;
    hooks.onDown(delay);
    reconnectTimer = setTimeout(connect, delay);
  };
}

function onAck(frame) {
  const entry = outbox.get(frame.id);
  if (!entry) return;
  outbox.delete(frame.id);
  entry.onAck(frame);
}
