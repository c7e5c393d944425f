"""One WebSocket connection as the hub sees it: what it was sent (ids only increase,
none twice), its frames waiting for the hub's next flush, the backlog it catches up
on, and the replies to its frames in frame order, acknowledgements included
(service.outcomes). See docs/architecture.md and service.hub.
"""
import time
from collections import deque

import gevent

from imchat.service.outcomes import Refused, acknowledgement

# Seconds a peer has to answer our close frame before its connection is dropped.
CLOSE_GRACE = 2


class Client:
    __slots__ = ('hub', 'user_id', 'token_key', 'expires_at', 'conn', 'high', 'syncing',
                 'pending', 'out', 'out_high', 'last_seen', 'next_ping', 'closed',
                 'replies', 'own_high')

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
        # Highest id of a message this connection sent and had stored: it never comes
        # back on this connection, yet the connection has it.
        self.own_high = 0
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
        """Highest message id this connection has, saved as the user's resume point:
        written to the socket, or sent by it and acknowledged. A client that never says
        `since` (the original's) must not get its own messages back as new after a
        reload. Acks follow the fan-out of their batch, so every id below an
        acknowledged one was handed to this connection already (with a bus, one still
        on its way from another node may not have been: such a client reads it in
        /chat/history)."""
        written = self.conn.written_high
        return written if written >= self.own_high else self.own_high

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

    def acknowledge_when(self, result, client_id, limit=0):
        """Acknowledge the frame whose outcome (service.outcomes) the AsyncResult
        `result` will hold, once it is ready, in frame order, without waiting for it
        here: the connection goes on reading. Whoever sets the result then calls
        results_ready() (the message writer does, for the frames this connection sent).
        With more than `limit` replies waiting, wait for the oldest before returning, so
        one connection cannot pile up work."""
        replies = self.replies
        if replies is None:
            replies = self.replies = deque()
        replies.append((result, client_id))
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
            result, reply = replies[0]
            if result is None:
                self.send(reply)  # an answer given at once, after those before it
            elif result.ready():
                outcome = result.value
                if isinstance(outcome, Refused):
                    self.hub.metrics.inc('imchat_messages_refused_total')
                elif outcome.msgid > self.own_high:
                    self.own_high = outcome.msgid
                outgoing = acknowledgement(outcome, reply)
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
