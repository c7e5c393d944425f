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

from imchat.model.sql import execute_sql, remove_expired, upsert_sql
from imchat.util.clock import now_ms
from imchat.util.greenlets import stop_gently

log = logging.getLogger(__name__)

TABLE = 'push_attention'
KEY = ('userid', 'node')
COLUMNS = KEY + ('shownat', 'hiddenat', 'expireat')
# Rows written in one statement at most.
UPSERT_PAGE = 500

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
            # By key, as the writer writes: a range delete could deadlock with another
            # node's upserts.
            with db_session:
                keys = sorted(execute_sql(self.db, 'SELECT userid FROM {} WHERE node = ?'
                                          .format(TABLE), [node]).fetchall())
            for start in range(0, len(keys), UPSERT_PAGE):
                page = [user_id for (user_id,) in keys[start:start + UPSERT_PAGE]]
                with db_session:
                    execute_sql(self.db, 'DELETE FROM {} WHERE node = ? AND userid IN ({})'
                                .format(TABLE, ', '.join(['?'] * len(page))), [node] + page,
                                write=True)
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
        """This node's rows of the users in `dirty`, and (every third of the ttl) of
        every user looking here: upserts in user order and updates by key, never a read
        of the rows first or a range of them locked, so the nodes' writers never
        deadlock (a read-then-write per row did, now and then, on MariaDB)."""
        node, now, db = self.node, now_ms(), self.db
        expireat = now + self.ttl * 1000
        shown, hidden = [], []
        for user_id in sorted(dirty):
            since, looking = self._now_of(user_id, now)
            (shown if looking else hidden).append((user_id, since))
        refresh = time.monotonic() >= self._refresh_at
        if refresh:
            self._refresh_at = time.monotonic() + max(0.2, self.ttl / 3)
            # The rows of those still looking here are kept alive (their shownat as is).
            kept = sorted(self._recorded - set(dirty))
        self._upsert([(user_id, since) for user_id, since in shown], expireat,
                     ('shownat', 'hiddenat', 'expireat'))
        for user_id, since in hidden:
            # Kept until it expires: a message stored before `since` on another node is
            # still judged by it.
            with db_session:
                execute_sql(db, 'UPDATE {} SET hiddenat = ? WHERE userid = ? AND node = ? '
                            'AND hiddenat = 0'.format(TABLE), [since, user_id, node],
                            write=True)
        self._recorded.update(user_id for user_id, _ in shown)
        self._recorded.difference_update(user_id for user_id, _ in hidden)
        if refresh:
            self._upsert([(user_id, self._now_of(user_id, now)[0]) for user_id in kept],
                         expireat, ('expireat',))
            remove_expired(db, TABLE, UPSERT_PAGE)

    def _upsert(self, rows, expireat, update):
        for start in range(0, len(rows), UPSERT_PAGE):
            page = rows[start:start + UPSERT_PAGE]
            values = []
            for user_id, since in page:
                values += [user_id, self.node, since, 0, expireat]
            with db_session:
                execute_sql(self.db, upsert_sql(self.db, TABLE, COLUMNS, KEY, update,
                                                len(page)), values, write=True)

    def _now_of(self, user_id, now):
        """(since when, looking) of a user here, as this node's history has it."""
        history = self._histories.get(user_id)
        return history.now if history is not None else (now, False)
