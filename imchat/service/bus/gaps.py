"""Filling gaps from the database (invariant 3 of bus.sequencer): ids nobody covered
after GAP_WAIT seconds (a writer died between commit and publish, a datagram was lost,
the bus was down) are read from the `message` table, with the joins that took ids in
the range, and released in order. See docs/architecture.md.
"""
import logging
import time
from typing import NamedTuple, Optional

import gevent
from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.service.bus.faults import Dependency
from imchat.service.bus.sequencer import Sequencer
from imchat.service.bus.transport import Transport
from imchat.service.delivery import envelope
from imchat.service.rich_read import add_quotes

log = logging.getLogger(__name__)

# Seconds a gap in the ids may stay open before it is filled from the database.
GAP_WAIT = 0.3
# Seconds between reads of the stream's position (finds a gap at the very end).
POLL = 0.5
# Rows read per query when filling a gap.
FILL_PAGE = 500


class JoinItem(NamedTuple):
    """A join at its place in the id order (ContactService takes an id for it)."""
    msgid: int
    user_id: int
    community_id: int


def stream_position(db) -> int:
    """The highest id the message stream has handed out (committed or not yet)."""
    with db_session:
        row = db.Stream.get(name='message')
        return row.pos if row is not None else 0


def read_message(db, msgid: int) -> Optional[dict]:
    """A stored message's message_wire, or None when there is no such row."""
    with db_session:
        row = db.Message.get(id=msgid)
        return add_quotes(db, [row.to_wire()])[0] if row is not None else None


class GapFiller:
    """One greenlet per node: watches the sequencer and fills what it waits for too long."""

    def __init__(self, db, sequencer: Sequencer, transport: Transport) -> None:
        self.db = db
        self.sequencer = sequencer
        self.transport = transport
        self._greenlet = None
        # A database outage is one line when it starts and one when it ends.
        self.database = Dependency('the database (gap filling)', log)

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _watch(self):
        next_poll = 0
        while True:
            gevent.sleep(0.1)
            try:
                seq = self.sequencer
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + POLL
                    seq.saw_position(stream_position(self.db))
                if seq.done < seq.top and seq.gap_age() >= GAP_WAIT:
                    self.fill(seq.top)
            except Exception as error:
                self.database.failed('reading the stream', error)
                gevent.sleep(1)
            else:
                self.database.answered()

    def fill(self, upto: int) -> None:
        """Release every committed id up to `upto` from the database, in pages."""
        seq = self.sequencer
        while seq.done < upto:
            start = seq.done
            with db_session:
                rows = select(m for m in self.db.Message if m.id > start and m.id <= upto
                              ).order_by(lambda m: m.id)[:FILL_PAGE]
                page = [(row.id, wire) for row, wire in zip(
                    rows, add_quotes(self.db, [row.to_wire() for row in rows]))]
                end = upto if len(page) < FILL_PAGE else page[-1][0]
                # Joins take ids too (ContactService): the ones in the gap.
                joins = [JoinItem(position, user_id, community_id)
                         for user_id, community_id, position in select(
                             (c.ownerid, c.dstid, c.joined_msgid) for c in self.db.Contact
                             if c.cate == CONTACT_COMMUNITY and c.joined_msgid > start
                             and c.joined_msgid <= end)]
            if seq.done != start or seq.paused:
                gevent.sleep(0.05)
                continue  # moved on (or waits for a join) while we read
            # Expected while the bus is down; worth a line when it is up.
            log.log(logging.INFO if self.transport.up else logging.DEBUG,
                    'bus: filled ids %s to %s from the database', start + 1, end)
            seq.fill(end, [(msgid, envelope(wire)) for msgid, wire in page]
                     + [(join.msgid, join) for join in joins])
