"""Who is looking: a person with no open WebSocket, or whose open ones are all hidden
(the client says so with cmd 20), gets pushes; one looking at imchat does not.

One process answers from its hub. With several nodes each node also keeps a
`push_attention` row per user it holds a visible connection of, refreshed while it
lives (a dead node's rows expire after IMCHAT_PRESENCE_TTL), so the node that stored a
message can tell whether the recipient is looking at another node. The rows are
written by one greenlet from a set of users whose state changed, so writes for one
user never race.
"""
import logging
import time
from typing import Iterable, List

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from pony.orm import db_session, select

from imchat.util.clock import now_ms

log = logging.getLogger(__name__)


class Attention:
    def __init__(self, db, hub, node=None, ttl=30):
        self.db = db
        self.hub = hub
        self.node = node      # None: one process, nothing to share
        self.ttl = ttl
        self._refresh_at = 0
        self._recorded = set()  # users this node has a row for
        # One writer at a time: a connection's first row is written at once (see
        # connection_changed), the rest by the writer greenlet.
        self._writing = Semaphore()
        self._dirty = set()
        self._wake = Event()
        self._writer = gevent.spawn(self._write_forever) if node is not None else None

    def looking_here(self, user_id: int) -> bool:
        return any(not client.hidden and not client.closed
                   for client in self.hub.users.get(user_id, ()))

    def connection_changed(self, client, opened: bool) -> None:
        """Hub listener: a connection registered or went away. A new (visible)
        connection's row is written before it gets its first message, so a message
        stored on another node at once already sees it."""
        if opened and self._writer is not None and client.user_id not in self._recorded:
            try:
                self._write({client.user_id})
                return
            except Exception:
                log.exception('push: recording who looks at node %s failed', self.node)
        self._changed(client.user_id)

    def visibility_changed(self, client, visible: bool) -> None:
        """The client said its page is shown (or hidden)."""
        client.hidden = not visible
        self._changed(client.user_id)

    def away(self, user_ids: Iterable[int]) -> List[int]:
        """Those of `user_ids` looking at no connection, on any node."""
        away = [u for u in user_ids if not self.looking_here(u)]
        if self.node is None or not away:
            return away
        node, now = self.node, now_ms()
        with db_session:
            looking = set(select(a.userid for a in self.db.PushAttention
                                 if a.userid in away and a.node != node
                                 and a.expireat > now)[:])
        return [u for u in away if u not in looking]

    def stop(self) -> None:
        if self._writer is None:
            return
        self._writer.kill(block=False)
        node = self.node
        try:
            with db_session:
                select(a for a in self.db.PushAttention if a.node == node).delete(bulk=True)
        except Exception:
            log.exception('push: could not clear the attention rows of node %s', node)

    def _changed(self, user_id):
        if self._writer is not None:
            self._dirty.add(user_id)
            self._wake.set()

    def _write_forever(self):
        while True:
            self._wake.wait(timeout=max(0.2, self.ttl / 3))
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                self._write(dirty)
            except Exception:
                log.exception('push: recording who looks at node %s failed', self.node)
                self._dirty |= dirty
                gevent.sleep(1)

    def _write(self, dirty):
        with self._writing:
            self._write_rows(dirty)

    def _write_rows(self, dirty):
        node, now = self.node, now_ms()
        expireat = now + self.ttl * 1000
        with db_session:
            Attention = self.db.PushAttention
            for user_id in dirty:
                looking = self.looking_here(user_id)
                row = Attention.get(userid=user_id, node=node)
                if looking and row is None:
                    Attention(userid=user_id, node=node, expireat=expireat)
                elif looking:
                    row.expireat = expireat
                elif row is not None:
                    row.delete()
                (self._recorded.add if looking else self._recorded.discard)(user_id)
            if time.monotonic() >= self._refresh_at:
                # Keep this node's rows alive; forget other nodes' that expired.
                self._refresh_at = time.monotonic() + max(0.2, self.ttl / 3)
                for row in Attention.select(lambda a: a.node == node):
                    row.expireat = expireat
                Attention.select(lambda a: a.expireat <= now).delete(bulk=True)
