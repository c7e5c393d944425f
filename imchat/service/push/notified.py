"""Which conversations a person was pushed about, until they read them: a read then
closes the notification on their other devices (a "read" push).

Kept in memory on the node that pushed, never written on the message path: a group
message to a thousand away members would otherwise be a thousand upserts in the
transaction the message writer waits for (SQLite has one writer). With several nodes
a read may happen on another node, so the entries are also written to `push_notified`,
in bounded chunks of one statement each, by a greenlet of their own, a moment later.
"""
import logging
from typing import Dict, Tuple

import gevent
from gevent.event import Event
from pony.orm import db_session, select

from imchat.util.greenlets import stop_gently

log = logging.getLogger(__name__)

Key = Tuple[int, int, int]  # (user id, target, dstid)

# Entries remembered at most; past it the oldest tenth is forgotten (its read then
# closes nothing on the other devices: a courtesy lost, nothing more).
MEMORY_MAX = 200000
# Rows written by one statement (and one short transaction).
FLUSH_CHUNK = 500
# Seconds between two writes of what changed (several nodes only).
FLUSH_SECONDS = 0.5


class Notified:
    def __init__(self, db, shared: bool) -> None:
        self.db = db
        self.shared = shared
        self._shown: Dict[Key, int] = {}
        self._dirty: Dict[Key, int] = {}
        self._wake = Event()
        self._stopping = False
        self._flusher = gevent.spawn(self._flush_forever) if shared else None

    def remember(self, notified: Dict[Key, int]) -> None:
        """Note the newest msgid pushed per conversation; never touches the database."""
        shown, dirty = self._shown, self._dirty
        for key, msgid in notified.items():
            # Popped and put back: the dict's order is then the order of use.
            newest = shown[key] = max(msgid, shown.pop(key, 0))
            if self.shared:
                dirty[key] = newest
        if len(shown) > MEMORY_MAX:
            for key in list(shown)[:MEMORY_MAX // 10]:
                del shown[key]
        if self.shared and notified:
            self._wake.set()

    def take(self, key: Key, msgid: int) -> bool:
        """True when a notification of this conversation, of no message after `msgid`,
        was pushed (here, or on another node): it is forgotten, and the read closes it."""
        shown = self._shown.get(key)
        if shown is not None:
            if shown > msgid:
                return False  # a newer message is still unread
            del self._shown[key]
            self._dirty.pop(key, None)
            if self.shared:
                self._delete(key)
            return True
        if not self.shared:
            return False
        return self._take_shared(key, msgid)

    def stop(self) -> None:
        if self._flusher is not None:
            self._stopping = True
            self._wake.set()
            stop_gently([self._flusher])

    def _take_shared(self, key, msgid):
        user_id, target, dstid = key
        with db_session:
            row = self.db.PushNotified.get(userid=user_id, target=target, dstid=dstid)
            if row is None or row.msgid > msgid:
                return False
            row.delete()
            return True

    def _delete(self, key):
        user_id, target, dstid = key
        with db_session:
            select(n for n in self.db.PushNotified if n.userid == user_id
                   and n.target == target and n.dstid == dstid).delete(bulk=True)

    def _flush_forever(self):
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            if not self._stopping:
                gevent.sleep(FLUSH_SECONDS)  # gather what comes meanwhile
            dirty, self._dirty = self._dirty, {}
            items = list(dirty.items())
            for start in range(0, len(items), FLUSH_CHUNK):
                try:
                    self._write(items[start:start + FLUSH_CHUNK])
                except Exception:
                    log.exception('push: writing %d notified conversations failed',
                                  len(items[start:start + FLUSH_CHUNK]))

    def _write(self, items):
        # Whole numbers only, so the values go into the statement as they are.
        values = ','.join('({:d},{:d},{:d},{:d})'.format(u, t, d, m)
                          for (u, t, d), m in items)
        if self.db.provider.dialect == 'MySQL':
            sql = ('INSERT INTO push_notified (userid, target, dstid, msgid) VALUES {} '
                   'ON DUPLICATE KEY UPDATE msgid = GREATEST(msgid, VALUES(msgid))')
        else:
            sql = ('INSERT INTO push_notified (userid, target, dstid, msgid) VALUES {} '
                   'ON CONFLICT (userid, target, dstid) DO UPDATE '
                   'SET msgid = max(msgid, excluded.msgid)')
        with db_session:
            self.db.execute(sql.format(values))

