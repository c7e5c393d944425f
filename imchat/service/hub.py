"""Who is connected: the registries that find a message's recipients without scanning
every connection (one service.client.Client per WebSocket connection).

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
`close_all`. Named events (util.signal): `connected` and `disconnected` for each
connection (the bus hears the channels it needs), `presence_changed` for a user's first
and last (service.events announces it). The hub only delivers: who gets a message is
decided before (service.delivery). See docs/architecture.md.
"""
import logging
import time

import gevent

from imchat.protocol import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNAUTHORIZED
from imchat.util.clock import now_ms
from imchat.util.signal import Signal

log = logging.getLogger(__name__)

# On shutdown, seconds between looks at whether every connection is unregistered, and
# seconds they have at least to get there after being dropped (one database write each).
UNREGISTER_POLL = 0.01
UNREGISTER_GRACE = 1
# Sweeps per ping interval (or idle timeout, whichever is shorter).
SWEEPS_PER_INTERVAL = 5


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
        # (user_id, community_ids) when a connection registers, (user_id) when it
        # unregisters: a bus (service.bus) hears the channels its connections need, and
        # `connected` returns only once it does (before the backlog is read).
        self.connected = Signal('connected')
        self.disconnected = Signal('disconnected')
        # (user_id, online) when a user's first connection opens (True) or last one
        # closes (False); presence announcements listen (see service.events).
        self.presence_changed = Signal('presence_changed')
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
            self.presence_changed.emit(client.user_id, True)
        self._start_sweeper()
        self.metrics.inc('imchat_connections_open')
        self.metrics.inc('imchat_connections_total')
        # Returns once this node hears the user's channels: before the backlog read.
        self.connected.emit(client.user_id, community_ids)
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
                self.presence_changed.emit(client.user_id, False)
            self.disconnected.emit(client.user_id)

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
