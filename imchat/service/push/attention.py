"""Who is looking: a person with no open WebSocket, or whose open ones are all hidden
(the client says so with cmd 20), gets pushes; one looking at imchat does not.

Looking is judged as of the message's `createat`, not when the planner gets to it: the
planner runs after delivery, off the writer's path, and by then the page that showed the
message may have been hidden (or a hidden one shown), which would push a message the
person saw, or none for one they did not. So each node keeps, per user, when they began
and stopped looking at its connections (`History`).

One process answers from that history. With several nodes each node also keeps a
`push_attention` row per user it holds connections of: since when they look (`shownat`)
and, once every connection is hidden or gone, since when they stopped (`hiddenat`).
Rows of users still looking are refreshed while the node lives; the others, and a dead
node's, expire after IMCHAT_PRESENCE_TTL. The rows are written by one greenlet from a
set of users whose state changed, so writes for one user never race.
"""
import logging
import time
from collections import deque
from typing import Dict, Iterable, List, Tuple

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from pony.orm import db_session, select

from imchat.util.clock import now_ms
from imchat.util.greenlets import stop_gently

log = logging.getLogger(__name__)

# Changes of one user's looking remembered: enough for a page hidden and shown again
# while a message waits for the planner.
HISTORY = 6


class History:
    """When one user began and stopped looking at this node's connections (ms)."""
    __slots__ = ('changes',)

    def __init__(self):
        self.changes = deque(maxlen=HISTORY)  # (ms, looking), oldest first

    def record(self, at: int, looking: bool) -> bool:
        """Note the state at `at`; True when it changed."""
        if self.changes and self.changes[-1][1] == looking:
            return False
        self.changes.append((at, looking))
        return True

    def looking_at(self, at: int) -> bool:
        for since, looking in reversed(self.changes):
            if since <= at:
                return looking
        return False  # no connection here yet

    @property
    def now(self) -> Tuple[int, bool]:
        return self.changes[-1] if self.changes else (0, False)


class Attention:
    def __init__(self, db, hub, node=None, ttl=30):
        self.db = db
        self.hub = hub
        self.node = node      # None: one process, nothing to share
        self.ttl = ttl
        self._refresh_at = 0
        self._histories: Dict[int, History] = {}
        self._recorded = set()  # users this node has a looking row for
        # One writer at a time: a connection's first row is written at once (see
        # connected), the rest by the writer greenlet.
        self._writing = Semaphore()
        self._dirty = set()
        self._wake = Event()
        self._stopping = False
        self._writer = gevent.spawn(self._write_forever) if node is not None else None

    def looking_here(self, user_id: int) -> bool:
        return any(not client.hidden and not client.closed
                   for client in self.hub.users.get(user_id, ()))

    def connected(self, user_id: int, community_ids=()) -> None:
        """The hub's `connected`: a connection registered. A new (visible)
        connection's row is written before it gets its first message, so a message
        stored on another node at once already sees it."""
        self._note(user_id)
        if self._writer is not None and user_id not in self._recorded:
            try:
                self._write({user_id})
                return
            except Exception:
                log.exception('push: recording who looks at node %s failed', self.node)
        self._changed(user_id)

    def disconnected(self, user_id: int) -> None:
        """The hub's `disconnected`: a connection went away."""
        self._note(user_id)
        self._changed(user_id)

    def visibility_changed(self, client, visible: bool) -> None:
        """The client said its page is shown (or hidden)."""
        client.hidden = not visible
        self._note(client.user_id)
        self._changed(client.user_id)

    def away(self, wanted: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
        """Those of the (user id, ms) pairs whose user looked at no connection, on any
        node, at that moment."""
        away = [(u, at) for u, at in wanted if not self._looked_here(u, at)]
        if self.node is None or not away:
            return away
        node, now = self.node, now_ms()
        users = list({u for u, _ in away})
        with db_session:
            rows = select((a.userid, a.shownat, a.hiddenat) for a in self.db.PushAttention
                          if a.userid in users and a.node != node and a.expireat > now)[:]
        elsewhere = {}
        for user_id, shown, hidden in rows:
            elsewhere.setdefault(user_id, []).append((shown, hidden))
        return [(u, at) for u, at in away
                if not any(shown <= at and (not hidden or hidden > at)
                           for shown, hidden in elsewhere.get(u, ()))]

    def stop(self) -> None:
        if self._writer is None:
            return
        self._stopping = True
        self._wake.set()
        stop_gently([self._writer])
        node = self.node
        try:
            with db_session:
                select(a for a in self.db.PushAttention if a.node == node).delete(bulk=True)
        except Exception:
            log.exception('push: could not clear the attention rows of node %s', node)

    def _looked_here(self, user_id, at):
        history = self._histories.get(user_id)
        return history is not None and history.looking_at(at)

    def _note(self, user_id):
        looking = self.looking_here(user_id)
        history = self._histories.get(user_id)
        if history is None:
            if not looking:
                return
            history = self._histories[user_id] = History()
        history.record(now_ms(), looking)
        if not looking and not self.hub.users.get(user_id):
            # Gone from this node: what it did matters for a moment only (a message
            # waiting for the planner), and the rows carry it for other nodes.
            gevent.spawn_later(max(1.0, self.ttl), self._forget, user_id)

    def _forget(self, user_id):
        history = self._histories.get(user_id)
        if history is not None and not self.hub.users.get(user_id) \
                and history.now[0] <= now_ms() - self.ttl * 1000:
            del self._histories[user_id]

    def _changed(self, user_id):
        if self._writer is not None:
            self._dirty.add(user_id)
            self._wake.set()

    def _write_forever(self):
        while True:
            self._wake.wait(timeout=max(0.2, self.ttl / 3))
            self._wake.clear()
            if self._stopping:
                return  # stop() clears this node's rows
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
                history = self._histories.get(user_id)
                since, looking = history.now if history is not None else (now, False)
                row = Attention.get(userid=user_id, node=node)
                if row is None:
                    if looking:
                        Attention(userid=user_id, node=node, shownat=since, hiddenat=0,
                                  expireat=expireat)
                elif looking:
                    row.set(shownat=since, hiddenat=0, expireat=expireat)
                elif not row.hiddenat:
                    # Kept until it expires: a message stored before `since` on
                    # another node is still judged by it.
                    row.hiddenat = since
                (self._recorded.add if looking else self._recorded.discard)(user_id)
            if time.monotonic() >= self._refresh_at:
                # Keep this node's looking rows alive; forget expired ones.
                self._refresh_at = time.monotonic() + max(0.2, self.ttl / 3)
                for row in Attention.select(lambda a: a.node == node and a.hiddenat == 0):
                    row.expireat = expireat
                Attention.select(lambda a: a.expireat <= now).delete(bulk=True)
