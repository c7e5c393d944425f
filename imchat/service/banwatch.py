"""Bans made in another process reach this one's connections even without a bus.

`flask --app wsgi admin ban` runs in a process of its own: it deletes the user's tokens
and, with IMCHAT_BUS, tells every node to close their sockets. A deployment of one node
has no bus, so each node also looks at the `ban` table every IMCHAT_BAN_POLL seconds
while it has connections (one small query: bans are few) and closes the sockets of a
user banned since it last looked. With a bus this only repeats what the bus did."""
import logging

import gevent
from pony.orm import db_session, select

from imchat.protocol import CLOSE_UNAUTHORIZED, contact_event
from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)

# Bans are looked for this far before the last look: the clock of the machine that
# wrote one may be behind this one's.
CLOCK_SLACK_MS = 60 * 1000


class BanWatch:
    def __init__(self, db, hub, interval: float):
        self.db = db
        self.hub = hub
        self.interval = interval
        self._since = now_ms()
        self._seen = {}  # user id -> createat of a ban already acted on
        self._greenlet = None

    def presence_changed(self, user_id: int, online: bool) -> None:
        """A hub presence listener: watch while anyone is connected here."""
        if online and self.interval > 0 and (self._greenlet is None or self._greenlet.dead):
            self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _watch(self):
        while self.hub.users:
            gevent.sleep(self.interval)
            try:
                self.look()
            except Exception as error:
                if unavailable_cause(error) is None and not pool_exhausted(error):
                    log.exception('could not look for new bans')
                # An outage is logged once, where it is seen (service.availability).

    def look(self) -> None:
        """Close the connections here of users banned since the last look."""
        now = now_ms()
        after = self._since - CLOCK_SLACK_MS
        with db_session:
            bans = select((b.userid, b.createat, b.reason) for b in self.db.Ban
                          if b.createat >= after)[:]
        self._since = now
        self._seen = {user_id: at for user_id, at in self._seen.items() if at >= after}
        for user_id, createat, reason in bans:
            if self._seen.get(user_id) == createat:
                continue
            self._seen[user_id] = createat
            clients = list(self.hub.users.get(user_id, ()))
            if not clients:
                continue
            log.warning('user %s is banned: closing %d connection(s)', user_id, len(clients))
            frame = contact_event('banned', 0, user_id, reason=reason or '')
            for client in clients:
                if not client.closed:
                    client.send(frame)
                    client.close_politely(CLOSE_UNAUTHORIZED, 'banned')
