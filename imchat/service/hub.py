"""Who is connected: one `Client` per WebSocket connection, and the registries that
find a message's recipients without scanning every connection.

    users:        user id -> that user's live clients (phone, laptop, ...)
    communities:  community id -> ids of its members who are online

Each client owns a bounded queue and one writer greenlet that drains it; putting a
frame on the queue never blocks, so one slow socket cannot stall a sender or the
others. A client whose queue fills is cut off: its messages are stored, and it catches
up when it reconnects.
"""
import logging
import time

import gevent
from gevent.queue import Empty, Full, Queue

from imchat.util.clock import now_ms
from imchat.util.wsconn import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNAUTHORIZED

log = logging.getLogger('imchat.chat')

_STOP = object()
# Seconds a peer has to answer our close frame before its connection is dropped.
CLOSE_GRACE = 2


class _Close:
    __slots__ = ('code', 'reason')

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason


class Client:
    def __init__(self, hub, user_id, conn, since, token_key=None, expires_at=None):
        self.hub = hub
        self.user_id = user_id
        # Which login this connection belongs to, so logging out closes it, and when
        # that login expires (ms since the epoch), which closes it too.
        self.token_key = token_key
        self.expires_at = expires_at
        self.conn = conn
        self.queue = Queue(hub.queue_size)
        # Highest message id put on the queue: the same message never goes twice to one
        # connection, and (the store fanning out in id order) none is skipped.
        self.high = since
        # Highest message id written to the socket, saved as the user's resume point.
        self.sent_high = 0
        # While the stored backlog is being sent, live messages wait here.
        self.syncing = True
        self.pending = []
        self.last_seen = time.monotonic()
        # Token bucket of messages this connection may send (see Hub.message_rate).
        self.allowance = hub.message_burst
        self.allowance_at = self.last_seen
        self.closed = False
        self.writer = None
        conn.on_pong = self.touch

    def __repr__(self):
        return '<Client user={} high={}>'.format(self.user_id, self.high)

    def touch(self):
        self.last_seen = time.monotonic()

    def may_send(self):
        """Take one message from the bucket; False when the sender is going too fast."""
        rate, burst = self.hub.message_rate, self.hub.message_burst
        if not rate:
            return True
        now = time.monotonic()
        self.allowance = min(burst, self.allowance + (now - self.allowance_at) * rate)
        self.allowance_at = now
        if self.allowance < 1:
            return False
        self.allowance -= 1
        return True

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
        """Queue a frame without blocking; a full queue cuts the connection off."""
        try:
            self.queue.put_nowait((msgid, outgoing))
        except Full:
            self.hub.cut_off(self, 'the connection stopped reading')

    def send_backlog(self, msgid, outgoing):
        """Queue a stored message from the backlog, waiting for room (no live traffic
        waits behind it: that goes to `pending`)."""
        if msgid <= self.high or self.closed:
            return
        self.high = msgid
        while not self.closed:  # a writer that died never drains the queue: do not wait on it
            try:
                self.queue.put((msgid, outgoing), timeout=1)
                return
            except Full:
                continue

    def finish_sync(self):
        pending, self.pending = self.pending, []
        self.syncing = False
        for msgid, outgoing in pending:
            self.deliver(msgid, outgoing)

    def close_politely(self, code, reason):
        """Write what is queued, then close with `code`."""
        try:
            self.queue.put_nowait((0, _Close(code, reason)))
        except Full:
            self.hub.cut_off(self, reason)

    def run_writer(self):
        conn, hub = self.conn, self.hub
        next_ping = time.monotonic() + hub.ping_interval
        try:
            while True:
                try:
                    msgid, item = self.queue.get(timeout=max(0.0, next_ping - time.monotonic()))
                except Empty:
                    msgid, item = 0, None
                if item is _STOP:
                    return
                if isinstance(item, _Close):
                    conn.close(item.code, item.reason)
                    # The peer answers a close with its own, which ends the reading
                    # side; one that does not is dropped after a grace period.
                    gevent.spawn_later(CLOSE_GRACE, conn.abort)
                    return
                if item is not None:
                    conn.send(item)
                    if msgid:
                        self.sent_high = msgid
                        hub.metrics.inc('imchat_messages_delivered_total')
                now = time.monotonic()
                if now >= next_ping:
                    if self.expires_at is not None and now_ms() >= self.expires_at:
                        self.close_politely(CLOSE_UNAUTHORIZED, 'the token has expired')
                    if not conn.keeps_alive_itself:
                        if now - self.last_seen > hub.idle_timeout:
                            log.info('closing idle connection of user %s', self.user_id)
                            conn.close(CLOSE_POLICY, 'idle timeout')
                            conn.abort()
                            return
                        conn.ping()
                    next_ping = now + hub.ping_interval
        except OSError:
            conn.abort()
        finally:
            self.closed = True


class Hub:
    def __init__(self, metrics, queue_size, ping_interval, idle_timeout, save_resume_point,
                 message_rate=0, message_burst=0):
        self.metrics = metrics
        self.message_rate = message_rate
        self.message_burst = message_burst
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
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

    def is_online(self, user_id):
        return bool(self.users.get(user_id))

    def register(self, client, community_ids):
        """Add a connected client and start its writer."""
        clients = self.users.setdefault(client.user_id, set())
        first = not clients
        if first:
            self._user_communities[client.user_id] = set(community_ids)
            for community_id in community_ids:
                self.communities.setdefault(community_id, set()).add(client.user_id)
        clients.add(client)
        if first:
            self._presence_changed(client.user_id, True)
        client.writer = gevent.spawn(client.run_writer)
        self.metrics.inc('imchat_connections_open')
        self.metrics.inc('imchat_connections_total')
        if self.bus is not None:
            # Returns once this node hears the user's channels: before the backlog read.
            self.bus.attach(client.user_id, community_ids)

    def unregister(self, client):
        """Forget a client whatever ended it, stop its writer, save where it got to."""
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
        if client.writer is not None and gevent.getcurrent() is not client.writer:
            client.writer.kill(block=False)

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

    def push(self, user_ids, outgoing, origin=None):
        """Queue an unstored event (read, typing, presence) for every connection of
        these users but `origin`; no message id bookkeeping, nothing kept for later."""
        for user_id in user_ids:
            for client in tuple(self.users.get(user_id, ())):
                if client is not origin and not client.closed:
                    client.send(outgoing)

    def fan_out(self, recipient_ids, msgid, outgoing, origin=None):
        """Queue one stored message for every connection of these users but `origin`."""
        for user_id in recipient_ids:
            for client in tuple(self.users.get(user_id, ())):
                if client is not origin:
                    client.deliver(msgid, outgoing)

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
        """Close every connection politely, then drop what is still open after `timeout`."""
        self.accepting = False
        clients = self.all_clients()
        for client in clients:
            client.close_politely(code, reason)
        writers = [c.writer for c in clients if c.writer is not None]
        gevent.joinall(writers, timeout=timeout)
        for client in clients:
            client.conn.abort()
