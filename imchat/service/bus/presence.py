"""Who is online across the nodes of a deployment: each node keeps a `presence` row per
user it holds a connection of, refreshed before it expires, so a node that dies stops
counting within `ttl` seconds. The service.presence.Presence seam for several nodes.
Each node writes only its own rows, with plain upserts (bus.presence._upsert says why).
See docs/architecture.md.
"""
import logging
from typing import Callable, Iterable, List, Set

import gevent
from pony.orm import db_session, select

from imchat.model.sql import execute_sql, remove_expired, upsert_sql
from imchat.service.bus.faults import Dependency
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)

# Rows written (or expired rows removed) per statement.
UPSERT_PAGE = 500
KEY = ('userid', 'node')


class DeploymentPresence:
    """A user is online while any node holds a connection of theirs."""

    local = False

    def __init__(self, db, hub, node: str, ttl: float = 30) -> None:
        self.db = db
        self.hub = hub
        self.node = node
        self.ttl = ttl
        self._keeper = None
        self._here: Set[int] = set()  # users this node holds a connection of
        # A database that stops answering is one line, not one per refresh.
        self.database = Dependency('the database (presence)', log)

    def is_online(self, user_id: int) -> bool:
        if self.hub.is_online(user_id):
            return True
        with db_session:
            now = now_ms()
            return self.db.Presence.exists(lambda p: p.userid == user_id and p.expireat > now)

    def online_among(self, user_ids: Iterable[int]) -> List[int]:
        """Those of `user_ids` connected to any node."""
        user_ids = list(user_ids)
        online = {u for u in user_ids if self.hub.is_online(u)}
        rest = [u for u in user_ids if u not in online]
        if rest:
            with db_session:
                now = now_ms()
                online.update(select(p.userid for p in self.db.Presence
                                     if p.userid in rest and p.expireat > now)[:])
        return [u for u in user_ids if u in online]

    def start(self) -> None:
        self._keeper = gevent.spawn(self._keep)

    def stop(self) -> None:
        """Stop refreshing, and take this node's rows out (its users are gone from it)."""
        if self._keeper is not None:
            self._keeper.kill(block=False)
        try:
            with db_session:
                execute_sql(self.db, 'DELETE FROM presence WHERE node = ?', [self.node],
                            write=True)
        except Exception as error:
            log.warning('bus: could not clear the presence of node %s: %s', self.node, error)

    def arrived(self, user_id: int) -> None:
        """This node holds a first connection of `user_id`."""
        self._here.add(user_id)
        try:
            self._upsert([user_id])
        except Exception as error:
            # The next refresh (every ttl/3) writes it again: no arrival stays unseen.
            self.database.failed('recording a presence', error)

    def left(self, user_id: int, still_here: Callable[[], bool]) -> None:
        """This node's last connection of `user_id` closed; the row stays when
        `still_here()` says another opened meanwhile."""
        if still_here():
            return
        self._here.discard(user_id)
        try:
            with db_session:
                execute_sql(self.db, 'DELETE FROM presence WHERE userid = ? AND node = ?',
                            [user_id, self.node], write=True)
        except Exception as error:
            self.database.failed('removing a presence', error)
        # Arrived again while the row was being deleted: the refresh writes it back.

    def _upsert(self, user_ids: List[int]) -> None:
        """This node's rows of `user_ids`, expiring ttl from now: one plain upsert per
        page, in user order. Each node writes only its own rows, and never reads them
        first, so refreshes on several nodes (or workers) never wait on each other,
        deadlock, or fail an optimistic check."""
        expireat = now_ms() + int(self.ttl * 1000)
        user_ids = sorted(user_ids)
        for start in range(0, len(user_ids), UPSERT_PAGE):
            page = user_ids[start:start + UPSERT_PAGE]
            values = []
            for user_id in page:
                values += [user_id, self.node, expireat]
            with db_session:
                execute_sql(self.db, upsert_sql(self.db, 'presence', KEY + ('expireat',), KEY,
                                                ('expireat',), len(page)), values, write=True)

    def _remove_expired(self) -> None:
        remove_expired(self.db, 'presence', UPSERT_PAGE)

    def _keep(self):
        while True:
            gevent.sleep(max(0.2, self.ttl / 3))
            try:
                self._upsert(list(self._here))
                self._remove_expired()
            except Exception as error:
                self.database.failed('refreshing presence', error)
            else:
                self.database.answered()

