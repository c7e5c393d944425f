"""One process without a bus: messages committed that the writer never delivered, found
by the gap rule of the bus's sequencer (service.bus.sequencer, invariant 3) and
delivered in id order before anything above them. See docs/architecture.md.

How a message gets stored without being delivered: the writer gives up on a batch's
commit (the database did not answer within IMCHAT_DB_TIMEOUT: a stall, or another
session holding the `stream` row), refuses its senders, and drops the connection; but
MariaDB goes on with the statements already sent, COMMIT included, once the row is
free. Its ids are then taken (ids are dense, and commit in order), so the next batch
stored gets higher ones; a recipient that saw those would never ask for the late ones
(`since` is the highest id seen).

The rule: the writer knows the highest message id it delivered (`delivered`). Before
it delivers a batch, every message id up to the batch's highest that it did not
deliver is read from the database and delivered first, in id order (joins take ids
too, ContactService: they are not messages, and read as nothing). Ids below a
committed id are committed (model.stream), so what is read is all there is. A frame
sent again whose first copy committed late is acknowledged with that copy's id: that
id counts too. And so that a late commit with nothing after it is not left waiting for
the next message, once a commit's outcome is unknown the writer reads the stream's
position every CHECK_EVERY seconds for UNSURE_SECONDS and, when it moved past
`delivered`, queues a check: handled in the writer's order, like a batch.
"""
import logging
import time
from typing import List, Optional, Sequence

import gevent
from pony.orm import db_session, select

from imchat.service.delivery import Committed
from imchat.service.rich_read import add_quotes

log = logging.getLogger(__name__)

# Seconds between reads of the stream's position while a commit's outcome is unknown.
CHECK_EVERY = 1.0
# How long after giving up on a commit its transaction may still commit: MariaDB's
# default innodb_lock_wait_timeout (50 s) and then some.
UNSURE_SECONDS = 70
# Rows read per query when filling a gap.
FILL_PAGE = 500


class LateCommits:
    """The writer's gap rule (see the module doc); `queue_check()` puts a check in the
    writer's queue, which calls `check()` in its turn."""

    def __init__(self, db, queue_check) -> None:
        self.db = db
        self.queue_check = queue_check
        # The highest message id delivered (or found to be no message); None until known.
        self.delivered: Optional[int] = None
        self._unsure_until = 0.0
        self._watcher = None
        self.check_queued = False

    def start(self) -> None:
        """Learn where the stream stands (a gap below it is none of this process's)."""
        if self.delivered is not None:
            return
        try:
            position = stream_position(self.db)
        except Exception as error:
            # Learnt from the first batch stored instead.
            log.warning('reading the message stream\'s position failed: %s', error)
            return
        if self.delivered is None:  # a batch delivered meanwhile knows better
            self.delivered = position

    def with_gap(self, committed: List[Committed], known: Sequence[int]) -> List[Committed]:
        """`committed` (a batch about to be delivered, in id order) preceded by the
        messages committed and not delivered below the highest of `known` (the ids the
        batch's frames got, stored now or before)."""
        if not known:
            return committed
        top = max(known)
        own = {wire['msgid'] for wire, _ in committed}
        if self.delivered is None:
            self.delivered = (min(own) if own else top) - 1
        delivered = self.delivered
        if top <= delivered:
            return committed
        self.delivered = top
        if sum(1 for msgid in own if msgid > delivered) == top - delivered:
            return committed  # no gap: the usual case
        missing = [(wire, None) for wire in read_messages(self.db, delivered, top)
                   if wire['msgid'] not in own]
        if missing:
            log.warning('delivering %d messages committed after their writer gave up on '
                        'them (ids %s to %s)', len(missing), missing[0][0]['msgid'],
                        missing[-1][0]['msgid'])
        return sorted(committed + missing, key=lambda item: item[0]['msgid'])

    def check(self) -> List[Committed]:
        """In the writer's turn: what committed up to the stream's position and was not
        delivered."""
        self.check_queued = False
        return self.with_gap([], [stream_position(self.db)])

    def gave_up(self) -> None:
        """A commit's outcome is unknown: look for it for UNSURE_SECONDS."""
        self._unsure_until = time.monotonic() + UNSURE_SECONDS
        if self._watcher is None:
            self._watcher = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.kill(block=False)

    def _watch(self):
        try:
            while time.monotonic() < self._unsure_until:
                gevent.sleep(CHECK_EVERY)
                try:
                    position = stream_position(self.db)
                except Exception as error:
                    log.debug('reading the message stream\'s position failed: %s', error)
                    continue
                if self.delivered is not None and position > self.delivered \
                        and not self.check_queued:
                    self.check_queued = True
                    self.queue_check()
        finally:
            self._watcher = None


def stream_position(db) -> int:
    """The message stream's committed position."""
    with db_session:
        row = db.Stream.get(name='message')
        return row.pos if row is not None else 0


def read_messages(db, after: int, upto: int) -> List[dict]:
    """The message_wire of every message with an id in (after, upto], in id order."""
    found = []
    while after < upto:
        with db_session:
            page = add_quotes(db, [row.to_wire() for row in select(
                m for m in db.Message if m.id > after and m.id <= upto
            ).order_by(lambda m: m.id)[:FILL_PAGE]])
        found.extend(page)
        if len(page) < FILL_PAGE:
            break
        after = page[-1]['msgid']
    return found
