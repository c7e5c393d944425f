"""Who is online across the nodes of a deployment: each node keeps a `presence` row per
user it holds a connection of, refreshed before it expires, so a node that dies stops
counting within `ttl` seconds. The service.presence.Presence seam for several nodes.
See docs/architecture.md.
"""
import logging
from typing import Callable, Iterable, List

import gevent
from pony.orm import db_session, select

from imchat.util.clock import now_ms

log = logging.getLogger(__name__)


class DeploymentPresence:
    """A user is online while any node holds a connection of theirs."""

    local = False

    def __init__(self, db, hub, node: str, ttl: float = 30) -> None:
        self.db = db
        self.hub = hub
        self.node = node
        self.ttl = ttl
        self._keeper = None

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
        node = self.node
        try:
            with db_session:
                self.db.Presence.select(lambda p: p.node == node).delete(bulk=True)
        except Exception:
            log.exception('could not clear the presence of node %s', self.node)

    def arrived(self, user_id: int) -> None:
        """This node holds a first connection of `user_id`."""
        self._record(user_id, True, lambda: True)

    def left(self, user_id: int, still_here: Callable[[], bool]) -> None:
        """This node's last connection of `user_id` closed; the row stays when
        `still_here()` says another opened meanwhile."""
        self._record(user_id, False, still_here)

    def _record(self, user_id, online, still_here):
        try:
            with db_session:
                Presence = self.db.Presence
                row = Presence.get(userid=user_id, node=self.node)
                if online:
                    expireat = now_ms() + self.ttl * 1000
                    if row is None:
                        Presence(userid=user_id, node=self.node, expireat=expireat)
                    else:
                        row.expireat = expireat
                elif row is not None and not still_here():
                    row.delete()
        except Exception:
            log.exception('bus: could not record the presence of user %s', user_id)

    def _keep(self):
        while True:
            gevent.sleep(max(0.2, self.ttl / 3))
            try:
                with db_session:
                    now = now_ms()
                    expireat = now + self.ttl * 1000
                    node = self.node
                    for row in self.db.Presence.select(lambda p: p.node == node):
                        row.expireat = expireat
                    self.db.Presence.select(lambda p: p.expireat <= now).delete(bulk=True)
            except Exception:
                log.exception('bus: could not refresh presence')
