"""Who is connected: one `Client` per WebSocket connection, and the registries that
find a message's recipients without scanning every connection.

    users:        user id -> that user's live clients (phone, laptop, ...)
    communities:  community id -> ids of its members who are online

Handing a frame to a client never blocks and never switches greenlets: it goes into
the client's buffer, and the hub flushes every buffer once the running greenlet yields,
so a batch of messages fanned out together costs one write per connection. The
connection writes in place while its socket accepts, and parks the rest with a send
deadline otherwise (imchat/transport/writes.py). A connection that stops reading is cut off:
its messages are stored, and it catches up when it reconnects. Pings, the idle
timeout and token expiry come from one periodic sweep over all connections, not from a
greenlet or timer per connection.

Public methods: `register`, `unregister`, `join_community`, `fan_out` (stored
messages, by msgid, exactly once and in order per connection), `push` (events that are
never stored), `online_members`, `is_online`, `cut_off`, `end_session`, `all_clients`,
`close_all`.
"""
import logging
import time
from collections import deque

import gevent

from imchat.util.clock import now_ms
from imchat.protocol import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNAUTHORIZED

log = logging.getLogger('imchat.chat')

# Seconds a peer has to answer our close frame before its connection is dropped.
CLOSE_GRACE = 2
# On shutdown, seconds between looks at whether every connection is unregistered, and
# seconds they have at least to get there after being dropped (one database write each).
UNREGISTER_POLL = 0.01
UNREGISTER_GRACE = 1
# Sweeps per ping interval (or idle timeout, whichever is shorter).
SWEEPS_PER_INTERVAL = 5


class Client:
    __slots__ = ('hub', 'user_id', 'token_key', 'expires_at', 'conn', 'high', 'syncing',
                 'pending', 'out', 'out_high', 'last_seen', 'next_ping', 'closed',
                 'replies')

    def __init__(self, hub, user_id, conn, since, token_key=None, expires_at=None):
        self.hub = hub
        self.user_id = user_id
        # Which login this connection belongs to, so logging out closes it, and when
        # that login expires (ms since the epoch), which closes it too.
        self.token_key = token_key
        self.expires_at = expires_at
        self.conn = conn
        # Highest message id handed to this connection: the same message never goes
        # twice to one connection, and (the store fanning out in id order) none is skipped.
        self.high = since
        # While the stored backlog is being sent, live messages wait here.
        self.syncing = True
        self.pending = []
        # Frames waiting for the hub's next flush (None: nothing waiting), and the
        # highest message id among them.
        self.out = None
        self.out_high = 0
        self.last_seen = time.monotonic()
        self.next_ping = self.last_seen + hub.ping_interval
        self.closed = False
        # Replies to this connection's frames still waiting for their outcome, in the
        # order the frames came (None: none waiting).
        self.replies = None
        conn.on_pong = self.touch
        conn.on_stalled = self.stalled
        conn.max_pending = hub.queue_size
        conn.send_timeout = hub.send_timeout

    def __repr__(self):
        return '<Client user={} high={}>'.format(self.user_id, self.high)

    @property
    def sent_high(self):
        """Highest message id written to the socket, saved as the user's resume point."""
        return self.conn.written_high

    def touch(self):
        self.last_seen = time.monotonic()

    def stalled(self, reason):
        self.hub.cut_off(self, reason)

    def deliver(self, msgid, outgoing):
        """Queue a stored message unless this connection already has it."""
        if msgid <= self.high or self.closed:
            return
        if self.syncing:
            self.pending.append((msgid, outgoing))
            if len(self.pending) > self.hub.queue_size:
                self.hub.cut_off(self, 'too many messages waiting while catching up')
            return
        self.high = msgid
        self.send(outgoing, msgid)

    def send(self, outgoing, msgid=0):
        """Queue a frame for the hub's next flush; never blocks."""
        if self.closed:
            return
        out = self.out
        if out is None:
            self.out = [outgoing]
            self.hub.want_flush(self)
        else:
            out.append(outgoing)
        if msgid:
            self.out_high = msgid

    def reply(self, outgoing):
        """Send the reply to a frame, after the replies to earlier frames."""
        if self.replies:
            self.replies.append((None, outgoing))
        else:
            self.send(outgoing)

    def reply_when(self, result, render, limit=0):
        """Reply `render(value)` (an OutgoingFrame, or None for no reply) once the
        AsyncResult `result` is ready, in frame order, without waiting for it here: the
        connection goes on reading. Whoever sets the result then calls results_ready()
        (the message service does, for the frames this connection sent). With more than
        `limit` replies waiting, wait for the oldest before returning, so one connection
        cannot pile up work."""
        replies = self.replies
        if replies is None:
            replies = self.replies = deque()
        replies.append((result, render))
        if result.ready():  # refused at once (the server is stopping)
            self.results_ready()
        elif limit and len(replies) > limit:
            oldest = replies[0][0]
            if oldest is not None:
                oldest.wait()
                self.results_ready()

    def results_ready(self):
        """Send the replies whose results are in, in frame order (up to the first that
        is not)."""
        replies = self.replies
        while replies:
            result, render = replies[0]
            if result is None:
                self.send(render)
            elif result.ready():
                outgoing = render(result.value)
                if outgoing is not None:
                    self.send(outgoing)
            else:
                return
            replies.popleft()

    def flush(self):
        out, self.out = self.out, None
        if out and not self.closed:
            self.conn.send_frames(out, self.out_high)

    def send_backlog(self, page):
        """Write a page of stored (msgid, OutgoingFrame) from the backlog and wait until
        the socket took it; a reader that stops reading is cut off at the send deadline.
        Live messages meanwhile wait in `pending`."""
        frames, high = [], self.high
        for msgid, outgoing in page:
            if msgid > high:
                frames.append(outgoing)
                high = msgid
        if not frames or self.closed:
            return
        self.high = high
        self.flush()
        self.conn.send_frames(frames, high, counted=False)
        self.conn.wait_written()

    def finish_sync(self):
        pending, self.pending = self.pending, []
        self.syncing = False
        for msgid, outgoing in pending:
            self.deliver(msgid, outgoing)

    def close_politely(self, code, reason):
        """Write what is queued, then close with `code`."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.conn.close(code, reason)
        # The peer answers a close with its own, which ends the reading side; one that
        # does not is dropped after a grace period.
        gevent.spawn_later(CLOSE_GRACE, self.conn.abort)


class Hub:
    def __init__(self, metrics, queue_size, ping_interval, idle_timeout, save_resume_point,
                 message_rate=0, message_burst=0, send_timeout=0):
        self.metrics = metrics
        self.message_rate = message_rate
        self.message_burst = message_burst
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        # Seconds a write may wait for a peer to read before it is cut off (0: forever).
        self.send_timeout = send_timeout
        self.save_resume_point = save_resume_point
        self.users = {}
        self.communities = {}
        self._user_communities = {}
        self.accepting = True
        # The bus when several nodes share the users (service.bus): told of every
        # connection, so this node hears the channels its connections need.
        self.bus = None
        # Called with (user_id, online) when a user's first connection opens (True) or
        # last one closes (False); presence listens (see service.events).
        self.presence_listeners = []
        self._dirty = []
        self._sweeper = None
        # WebSockets open but not yet registered (authenticating, reading the user's
        # groups): close_all closes them too.
        self._opening = set()

    # -- writing -------------------------------------------------------------------

    def want_flush(self, client):
        """`client` has frames waiting: flush it (with every other) once the running
        greenlet yields, so frames queued together leave in one write."""
        dirty = self._dirty
        dirty.append(client)
        if len(dirty) == 1:
            gevent.get_hub().loop.run_callback(self._flush)

    def _flush(self):
        # Runs in the event loop's own greenlet: nothing here may block or switch.
        dirty, self._dirty = self._dirty, []
        delivered = 0
        for client in dirty:
            if client.out:
                delivered += len(client.out)
                try:
                    client.flush()
                except Exception:
                    log.exception('writing to a connection of user %s failed',
                                  client.user_id)
                    client.conn.abort()
        if delivered:
            self.metrics.inc('imchat_messages_delivered_total', delivered)

    # -- the periodic sweep ----------------------------------------------------------

    def _start_sweeper(self):
        if self._sweeper is None or self._sweeper.dead:
            self._sweeper = gevent.spawn(self._sweep_forever)

    def _sweep_forever(self):
        while self.users:
            limits = [t for t in (self.ping_interval, self.idle_timeout) if t]
            gevent.sleep(max(0.01, min(limits or [5]) / SWEEPS_PER_INTERVAL))
            try:
                self.sweep()
            except Exception:
                log.exception('the connection sweep failed')
        self._sweeper = None

    def sweep(self):
        """Close expired logins and silent peers, and ping the connections due one."""
        now, wall = time.monotonic(), now_ms()
        ping_interval, idle_timeout = self.ping_interval, self.idle_timeout
        for client in self.all_clients():
            if client.closed:
                continue
            if client.expires_at is not None and wall >= client.expires_at:
                client.close_politely(CLOSE_UNAUTHORIZED, 'the token has expired')
                continue
            conn = client.conn
            if conn.keeps_alive_itself:
                continue
            if idle_timeout and now - client.last_seen > idle_timeout:
                log.info('closing idle connection of user %s', client.user_id)
                client.closed = True
                conn.close(CLOSE_POLICY, 'idle timeout')
                conn.abort()
            elif ping_interval and now >= client.next_ping:
                client.next_ping = now + ping_interval
                try:
                    conn.ping()
                except OSError:
                    conn.abort()

    # -- connections -------------------------------------------------------------------

    def is_online(self, user_id):
        return bool(self.users.get(user_id))

    def opening(self, conn):
        """A WebSocket is open and about to authenticate: False when this node is
        stopping (close it going away), else it is closed with the rest until `opened`."""
        if not self.accepting:
            return False
        self._opening.add(conn)
        return True

    def opened(self, conn):
        self._opening.discard(conn)

    def register(self, client, community_ids):
        """Add a connected client; False when this node is stopping (close_all has run
        or is running, and would miss it)."""
        if not self.accepting:
            return False
        self._opening.discard(client.conn)
        clients = self.users.setdefault(client.user_id, set())
        first = not clients
        if first:
            self._user_communities[client.user_id] = set(community_ids)
            for community_id in community_ids:
                self.communities.setdefault(community_id, set()).add(client.user_id)
        clients.add(client)
        if first:
            self._presence_changed(client.user_id, True)
        self._start_sweeper()
        self.metrics.inc('imchat_connections_open')
        self.metrics.inc('imchat_connections_total')
        if self.bus is not None:
            # Returns once this node hears the user's channels: before the backlog read.
            self.bus.attach(client.user_id, community_ids)
        return True

    def unregister(self, client):
        """Save where a client got to, then forget it, whatever ended it (saved first, so
        a reconnect that finds the user offline also finds the resume point)."""
        client.closed = True
        # Saved while the user still counts as online: a connection opened the moment
        # this one is gone resumes after what this one delivered, not before.
        if client.sent_high:
            try:
                self.save_resume_point(client.user_id, client.sent_high)
            except Exception:
                log.exception('could not save the resume point of user %s', client.user_id)
        clients = self.users.get(client.user_id)
        if clients is not None and client in clients:
            clients.discard(client)
            self.metrics.dec('imchat_connections_open')
            if not clients:
                del self.users[client.user_id]
                for community_id in self._user_communities.pop(client.user_id, ()):
                    members = self.communities.get(community_id)
                    if members is not None:
                        members.discard(client.user_id)
                        if not members:
                            del self.communities[community_id]
                self._presence_changed(client.user_id, False)
            if self.bus is not None:
                self.bus.detach(client.user_id)

    def join_community(self, user_id, community_id):
        """A user joined: their open connections get the group's messages from now on."""
        if self.users.get(user_id):
            self._user_communities.setdefault(user_id, set()).add(community_id)
            self.communities.setdefault(community_id, set()).add(user_id)

    def leave_community(self, user_id, community_id):
        """A user left or was kicked: their open connections stop getting the group's
        messages at once."""
        self._user_communities.get(user_id, set()).discard(community_id)
        members = self.communities.get(community_id)
        if members is not None:
            members.discard(user_id)
            if not members:
                del self.communities[community_id]

    def _presence_changed(self, user_id, online):
        for listener in self.presence_listeners:
            listener(user_id, online)

    def fan_out(self, recipient_ids, msgid, outgoing, origin=None):
        """Queue one stored message for every connection of these users but `origin`.
        Messages must come in msgid order; each connection gets each at most once."""
        users = self.users
        for user_id in recipient_ids:
            clients = users.get(user_id)
            if clients:
                for client in tuple(clients):
                    if client is not origin:
                        client.deliver(msgid, outgoing)

    def push(self, user_ids, outgoing, origin=None):
        """Queue an event that is never stored (typing, presence, read receipts) for
        every connection of these users but `origin`; no msgid bookkeeping."""
        users = self.users
        for user_id in user_ids:
            clients = users.get(user_id)
            if clients:
                for client in tuple(clients):
                    if client is not origin:
                        client.send(outgoing)

    def online_members(self, community_id):
        return tuple(self.communities.get(community_id, ()))

    def cut_off(self, client, reason):
        if client.closed:
            return
        log.warning('cutting off a connection of user %s: %s', client.user_id, reason)
        self.metrics.inc('imchat_queue_drops_total')
        client.closed = True
        client.conn.abort()

    def end_session(self, token_key):
        """A token was logged out: close the connections opened with it."""
        for client in self.all_clients():
            if client.token_key == token_key:
                client.close_politely(CLOSE_UNAUTHORIZED, 'logged out')

    def all_clients(self):
        return [client for clients in self.users.values() for client in clients]

    def close_all(self, code=CLOSE_GOING_AWAY, reason='server going away', timeout=3):
        """Close every connection politely, drop what is still open after `timeout`, then
        wait until each is unregistered, its resume point saved (until `timeout` is up,
        or UNREGISTER_GRACE seconds at least): a connection read in the background
        belongs to no request the server would wait for."""
        self.accepting = False
        deadline = time.monotonic() + timeout
        for conn in list(self._opening):
            conn.close(code, reason)
        clients = self.all_clients()
        for client in clients:
            client.close_politely(code, reason)
        with gevent.Timeout(timeout, False):
            for client in clients:
                client.conn.wait_written()
        for client in clients:
            client.conn.abort()
        deadline = max(deadline, time.monotonic() + UNREGISTER_GRACE)
        while self.users and time.monotonic() < deadline:
            gevent.sleep(UNREGISTER_POLL)
