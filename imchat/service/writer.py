"""The message writer: accepted frames stored in batches, each committed batch handed
to the one delivery seam (service.delivery), then the senders' outcomes settled
(service.outcomes). See docs/architecture.md.

A busy server does one transaction for many messages instead of one each. A writer
greenlet takes what the queue holds (up to BATCH_MAX), stores it in one transaction,
then hands it to `delivery` (in id order, so every connection sees ids increase) and
releases the senders' acknowledgements. No ack ever precedes its commit.

On MySQL two writers overlap: the next batch is sent, on a connection of its own, as
soon as the one before holds the message stream, so the database goes from one batch's
COMMIT straight to the next batch's statements instead of waiting for this process to
read the reply, deliver and write the next batch. The batches still commit, deliver
and ack in the order they were taken (a _Turn each, chained): the second one's UPDATE
of the stream waits for the first's lock, and it stores nothing unless the first did
commit (model.insert_messages' `after`; else StreamMoved, and it is stored again once
the first is over).

A frame sent again (after a dropped connection) must get its first copy's ack and no
second row. The database says whether a key is new: (userid, clientid) is a unique key,
so the batch is written without looking its keys up first, and only a batch that hits
a key stored before is written again, having looked its keys up in its transaction
(about one batch in many thousands under load: a resend is rare). A repeat inside one
batch is caught here, before writing.
"""
import logging
import time
from typing import Optional

import gevent
from gevent.event import AsyncResult, Event
from gevent.queue import Empty, Queue
from pony.orm import db_session

from imchat.model.pool import multi_statement_connections
from imchat.model.sql import execute_sql, is_duplicate_key
from imchat.model.stream import StreamMoved, insert_messages
from imchat.protocol import message_wire
from imchat.service.availability import DatabaseWatch, pool_exhausted, unavailable_cause
from imchat.service.conversation import conversation_statements
from imchat.service.delivery import Delivery, LocalDelivery
from imchat.service.errors import Refusal
from imchat.service.frame import idempotency_key
from imchat.service.outcomes import Refused, Stored
from imchat.service.permissions import Permissions
from imchat.service.writer_gaps import LateCommits
from imchat.service.writer_turns import Turn as _Turn
from imchat.service.rich_store import rich_statements, rich_wire
from imchat.util.clock import now_ms
from imchat.util.greenlets import kill
from imchat.util.signal import Signal

log = logging.getLogger(__name__)

# Messages committed in one transaction at most; bigger batches add latency for little gain.
BATCH_MAX = 256
# Batches in the database at once on MySQL (see above); SQLite has one writer at a time.
PIPELINE_DEPTH = 2
# The refusal of a frame that comes while the server stops.
SHUTTING_DOWN = Refusal('the server is shutting down, send it again shortly',
                        'unavailable.shutting_down')


_OVER = _Turn()
_OVER.finish()

# Put in the queue instead of a frame: look for messages committed late (writer_gaps).
_CHECK = object()


class _Pending:
    __slots__ = ('sender_id', 'frame', 'origin', 'result', 'key')

    def __init__(self, sender_id, frame, origin):
        self.sender_id = sender_id
        self.frame = frame
        self.origin = origin
        self.result = AsyncResult()
        # (sender id, idempotency key), or None when the frame's id cannot be one.
        key = idempotency_key(frame.client_id)
        self.key = None if key is None else (sender_id, key)


def _settle(outcomes):
    """Set each (pending, outcome)'s result, then tell each origin (the sender's
    connection, service.client.Client) once that its results are in: it acknowledges them in frame
    order, a batch's worth in one go (no callback for each result)."""
    origins = {}
    for pending, outcome in outcomes:
        pending.result.set(outcome)
        if pending.origin is not None:
            origins[id(pending.origin)] = pending.origin
    for origin in origins.values():
        origin.results_ready()


class MessageWriter:
    """Stores accepted frames in batches and hands each committed batch to `delivery`."""

    def __init__(self, db, delivery: Delivery, permissions: Permissions, metrics,
                 db_watch: Optional[DatabaseWatch] = None, consecutive_ids: bool = True) -> None:
        self.db = db
        self.consecutive_ids = consecutive_ids
        self.delivery = delivery
        self.permissions = permissions
        self.metrics = metrics
        # Told of each message refused for an outage (it logs the outage once).
        self.db_watch = db_watch
        self._queue = Queue()
        self._writers = None
        # The turn of the batch taken last (the next one follows it).
        self._last_turn = _OVER
        self._stopping = False
        # Batches taken off the queue and not yet stored.
        self._in_flight = 0
        # Alone, messages committed after the writer gave up on them are found here;
        # with a bus, its sequencer finds them (bus.gaps).
        self._late = (LateCommits(db, lambda: self._queue.put(_CHECK))
                      if isinstance(delivery, LocalDelivery) else None)
        # (wires): a committed batch was delivered, on the node that stored it (Web
        # Push plans its notifications from here; a handler must return at once).
        self.batch_delivered = Signal('batch_delivered')

    # -- storing -------------------------------------------------------------------

    def submit(self, sender_id: int, frame, origin: Optional[object] = None) -> AsyncResult:
        """Queue a checked frame for storage; returns an AsyncResult of Stored or Refused
        (service.outcomes). `origin`: the sender's connection, told once its results are
        in (service.client.Client.results_ready), and left out of the message's delivery."""
        pending = _Pending(sender_id, frame, origin)
        if self._stopping:
            pending.result.set(Refused(SHUTTING_DOWN))
            return pending.result
        if self._writers is None:
            depth = PIPELINE_DEPTH if self.db.provider.dialect == 'MySQL' else 1
            self._writers = [gevent.spawn(self._run_writer) for _ in range(depth)]
        self._queue.put(pending)
        return pending.result

    def stop(self, timeout: float = 5) -> None:
        """Refuse new messages and finish storing the ones in flight."""
        self._stopping = True
        self.wait_until_idle(timeout)
        if self._writers is not None:
            kill(self._writers)
        if self._late is not None:
            self._late.stop()
        # Only when storing took longer than `timeout`:
        left = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _CHECK:
                left.append(item)
        _settle([(pending, Refused(SHUTTING_DOWN))
                 for pending in left if not pending.result.ready()])

    def wait_until_idle(self, timeout: float = 5) -> None:
        """Return once the queue is empty and no batch is being stored (or at `timeout`)."""
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._in_flight) and time.monotonic() < deadline:
            gevent.sleep(0.005)

    def _run_writer(self):
        # A batch's statements go in one query (insert_messages): this greenlet borrows
        # the pooled connections that allow it.
        with multi_statement_connections():
            if self._late is not None:
                self._late.start()
            self._write_batches()

    def _write_batches(self):
        while True:
            # Take the next place in line first, then wait until the batch before holds
            # the stream (or is over): what comes meanwhile makes this batch bigger.
            previous, turn = self._last_turn, _Turn()
            self._last_turn = turn
            try:
                self._wait_for_hold(previous)
                batch = [self._queue.get()]
                self._in_flight += 1
                try:
                    while len(batch) < BATCH_MAX:
                        try:
                            batch.append(self._queue.get_nowait())
                        except Empty:
                            break
                    checks = [item for item in batch if item is _CHECK]
                    if checks:
                        batch = [item for item in batch if item is not _CHECK]
                    if batch:
                        self._store_batch(batch, previous, turn)
                    else:
                        self._check_late(previous)
                finally:
                    self._in_flight -= 1
            finally:
                turn.finish()

    @staticmethod
    def _wait_for_hold(previous):
        while not previous.over.is_set() and previous.after is None:
            previous.changed.wait()

    def _store_batch(self, batch, previous, turn):
        """Store `batch`, which follows the batch whose turn is `previous`, then deliver
        it and settle its senders' results; `turn` is this batch's."""
        try:
            try:
                outcomes = self._attempt(batch, previous, turn, look_up=False)
            except Exception as error:
                if not (is_duplicate_key(error) or isinstance(error, StreamMoved)):
                    raise
                # A key stored before (a frame sent again): its first copy's ack. Or the
                # batch before did not commit: after it, then.
                previous.over.wait()
                outcomes = self._attempt(batch, _OVER, turn, look_up=True)
        except Exception as error:
            previous.over.wait()
            if self._late is not None:
                # The database may have the batch all the same (its COMMIT was sent).
                self._late.gave_up()
            if self._refuse_unavailable(batch, error):
                return
            log.exception('storing %d messages failed', len(batch))
            # Retry one by one, so one bad message cannot sink the others.
            outcomes = []
            for pending in batch:
                try:
                    # Not held out to the next batch: it would commit between two.
                    outcomes.extend(self._attempt([pending], _OVER, None, look_up=True))
                except Exception:
                    log.exception('storing a message from user %s failed', pending.sender_id)
                    outcomes.append((pending, Refused(Refusal(
                        'the message could not be stored, please send it again', 'internal')),
                        None))
        # The batch before is delivered first: ids increase on every connection.
        previous.over.wait()
        committed = [(wire, pending.origin) for pending, _, wire in outcomes
                     if wire is not None]
        if self._late is not None:
            committed = self._with_late(committed, outcomes)
        self.delivery.deliver(committed)
        _settle([(pending, outcome) for pending, outcome, _ in outcomes])
        if committed:
            try:
                self.batch_delivered.emit([wire for wire, _ in committed])
            except Exception:
                log.exception('after delivering %d messages', len(committed))

    def _with_late(self, committed, outcomes):
        try:
            return self._late.with_gap(committed, [outcome.msgid for _, outcome, _ in outcomes
                                                   if isinstance(outcome, Stored)])
        except Exception as error:
            # Read again at the next batch, or the next check.
            log.warning('looking for messages committed late failed: %s', error)
            self._late.gave_up()
            return committed

    def _check_late(self, previous):
        """A check queued by writer_gaps: deliver what committed late, in its turn."""
        previous.over.wait()
        try:
            late = self._late.check()
        except Exception as error:
            log.warning('looking for messages committed late failed: %s', error)
            return
        if late:
            self.delivery.deliver(late)

    def _attempt(self, batch, previous, turn, look_up):
        """One try at storing `batch`, following `previous` when that holds the stream
        (else after it is over); the next batch may follow this one once it holds it
        (never when `turn` is None)."""
        after = None
        counted = None
        if not previous.over.is_set():
            self._wait_for_hold(previous)
            if not previous.over.is_set():
                after = previous.after
                counted = previous.follower = Event()
        try:
            return self._commit(batch, look_up, after, turn)
        except BaseException:
            if turn is not None:
                turn.lose()
            raise
        finally:
            if counted is not None:
                counted.set()

    def _refuse_unavailable(self, batch, error):
        """Refuse the whole batch, with no retry one by one and no traceback, when the
        database did not answer (or no pooled connection came free); True if so."""
        cause = unavailable_cause(error)
        if cause is not None:
            msg = Refusal('the database is unavailable, send it again shortly',
                          'unavailable.database')
            for _ in batch:
                if self.db_watch is not None:
                    self.db_watch.refuse(cause)
        elif pool_exhausted(error):
            log.warning('storing %d messages: %s', len(batch), error)
            msg = Refusal('the server is busy, send it again shortly', 'busy')
        else:
            return False
        _settle([(pending, Refused(msg)) for pending in batch])
        return True

    def _commit(self, batch, look_up, after=None, turn=None):
        """Store a batch in one transaction. Without `look_up` its keys are not looked
        up: a key stored before fails the transaction (the unique key), is_duplicate_key
        tells, and the batch is stored again with `look_up`, getting the stored copies'
        acks for those keys. `after`: see insert_messages; `turn` holds the stream once
        this batch does."""
        accepted, outcomes, refused = [], [], []
        with db_session:
            stored_before = self._already_stored(batch) if look_up else {}
            batch_keys = {}
            for pending in batch:
                key = pending.key
                if key is not None and (key in stored_before or key in batch_keys):
                    # Sent again after a dropped connection: the same ack, stored once.
                    earlier = stored_before.get(key) or batch_keys[key]
                    outcomes.append((pending, earlier, None))
                    continue
                refusal = self.permissions.refusal(pending.sender_id, pending.frame)
                if refusal:
                    if key is not None and not look_up:
                        refused.append(len(outcomes))
                    outcomes.append((pending, Refused(refusal), None))
                    continue
                accepted.append(pending)
                if key is not None:
                    batch_keys[key] = None  # filled in once the row has its id
            if refused:
                # A frame refused now may have been stored before it was sent again
                # (a recall already done, a friendship since ended): then its first
                # copy's ack, as any frame sent again gets.
                found = self._already_stored([outcomes[i][0] for i in refused])
                for i in refused:
                    stored = found.get(outcomes[i][0].key)
                    if stored is not None:
                        outcomes[i] = (outcomes[i][0], stored, None)
            createat = now_ms()
            rows = [(p.sender_id, p.frame.cmd, p.frame.dstid, p.frame.media, p.frame.content,
                     p.frame.pic, p.frame.url, p.frame.memo, p.frame.amount, createat,
                     None if p.key is None else p.key[1])
                    for p in accepted]
            holding = None
            if turn is not None:
                def holding(ids):
                    # The row of this batch the next one checks for (it has a key, so
                    # it can only be this batch's).
                    for row, msgid in zip(reversed(rows), reversed(ids)):
                        if row[-1] is not None:
                            turn.hold((ids[-1], msgid, row[0], row[-1]))
                            return
            ids = insert_messages(self.db, rows, self.consecutive_ids, lambda ids: (
                conversation_statements(self.db, [row[:3] + (msgid,)
                                                  for row, msgid in zip(rows, ids)])
                + rich_statements(accepted, ids)),
                last=True, after=after, holding=holding)
        self.metrics.inc('imchat_messages_stored_total', len(rows))
        self.metrics.inc('imchat_message_batches_total')
        for pending, row, msgid in zip(accepted, rows, ids):
            stored = Stored(msgid, createat)
            if pending.key is not None:
                batch_keys[pending.key] = stored
            wire = message_wire(msgid, *row[:-1])
            if pending.frame.extra is not None:
                rich_wire(wire, pending.frame.extra)
            outcomes.append((pending, stored, wire))
        # A repeat inside this very batch learns its twin's id only now.
        return [(p, batch_keys[p.key] if outcome is None else outcome, wire)
                for p, outcome, wire in outcomes]

    def _already_stored(self, batch):
        """{(sender id, key): Stored} for the batch's idempotency keys already stored:
        one lookup in the (userid, clientid) index for each key. (MariaDB reads
        `userid IN (..) AND clientid IN (..)` with many values by scanning the whole
        table, so there it is asked for the pairs themselves; SQLite searches the index
        for the two lists.)"""
        pairs = sorted({p.key for p in batch if p.key is not None})
        if not pairs:
            return {}
        if self.db.provider.dialect == 'MySQL':
            where = '(userid, clientid) IN ({})'.format(', '.join(['(?, ?)'] * len(pairs)))
            params = [value for pair in pairs for value in pair]
        else:
            senders = sorted({sender for sender, _ in pairs})
            keys = sorted({key for _, key in pairs})
            where = 'userid IN ({}) AND clientid IN ({})'.format(
                ', '.join(['?'] * len(senders)), ', '.join(['?'] * len(keys)))
            params = senders + keys
        found = execute_sql(self.db, 'SELECT userid, clientid, id, createat FROM message '
                            'WHERE ' + where, params).fetchall()
        return {(userid, clientid): Stored(msgid, createat)
                for userid, clientid, msgid, createat in found}
