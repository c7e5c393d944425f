"""Storing chat messages, fanning them out, and reading them back.

Accepted frames are stored in batches: a busy server does one transaction for many
messages instead of one each. A writer greenlet takes what the queue holds (up to
BATCH_MAX), stores it in one transaction, then fans each message out (in id order, so
every connection sees ids increase) and releases the senders' acknowledgements. No ack
ever precedes its commit.

On MySQL two writers overlap: the next batch is sent, on a connection of its own, as
soon as the one before holds the message stream, so the database goes from one batch's
COMMIT straight to the next batch's statements instead of waiting for this process to
read the reply, fan out and write the next batch. The batches still commit, fan out
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

import gevent
from gevent.event import AsyncResult, Event
from gevent.queue import Empty, Queue
from pony.orm import db_session, desc, exists, select

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.model.sql import execute_sql, is_duplicate_key
from imchat.model.stream import StreamMoved, insert_messages
from imchat.protocol import (CMD_RECALL, CMD_ROOM_MSG, CMD_SINGLE_MSG, encode, message_wire,
                             recipients)
from imchat.model.pool import multi_statement_connections
from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.service.conversation import conversation_statements
from imchat.service.errors import BadRequest, Forbidden, NotFound
from imchat.service.frame import Frame, idempotency_key
from imchat.service.recall import recall_refusal
from imchat.util.clock import now_ms

log = logging.getLogger('imchat.chat')

# Messages committed in one transaction at most; bigger batches add latency for little gain.
BATCH_MAX = 256
# Batches in the database at once on MySQL (see above); SQLite has one writer at a time.
PIPELINE_DEPTH = 2
# Stored messages read per query when a connection catches up: small pages, with a
# yield between them, so forty reconnects at once do not starve everyone else.
BACKLOG_PAGE = 100
HISTORY_DEFAULT = 30
HISTORY_MAX = 100
# Positive permission answers kept in memory (unfriending, leaving and kicking take
# theirs out, see forget_permission); cleared when this many pile up.
PERMISSION_CACHE_MAX = 1000000


class Stored:
    __slots__ = ('msgid', 'createat')

    def __init__(self, msgid, createat):
        self.msgid = msgid
        self.createat = createat


class Refused:
    __slots__ = ('msg',)

    def __init__(self, msg):
        self.msg = msg


class _Turn:
    """A batch's place in the order batches are stored, fanned out and acked in."""

    __slots__ = ('after', 'changed', 'over', 'follower')

    def __init__(self):
        # While an attempt at storing the batch holds the message stream: what the next
        # batch may expect of it (insert_messages' `after`); None when it does not.
        self.after = None
        # Set (and replaced) whenever `after` is set or the turn is over.
        self.changed = Event()
        # Set once the batch's outcomes are all delivered.
        self.over = Event()
        # The next batch's attempt that counts on `after`, until it has ended: an Event
        # set then. A failed attempt waits for it before its batch tries again, so that
        # one cannot commit first.
        self.follower = None

    def hold(self, after):
        self.after = after
        self._change()

    def lose(self):
        """The attempt that held the stream failed: wait until the next batch's attempt
        that counted on it has failed too (it cannot commit)."""
        self.after = None
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.wait()

    def finish(self):
        self.after = None
        self.over.set()
        self._change()

    def _change(self):
        changed, self.changed = self.changed, Event()
        changed.set()


_OVER = _Turn()
_OVER.finish()


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
    connection, hub.Client) once that its results are in: it acknowledges them in frame
    order, a batch's worth in one go (no callback for each result)."""
    origins = {}
    for pending, outcome in outcomes:
        pending.result.set(outcome)
        if pending.origin is not None:
            origins[id(pending.origin)] = pending.origin
    for origin in origins.values():
        origin.results_ready()


class MessageService:
    def __init__(self, db, hub, metrics, consecutive_ids=True):
        self.db = db
        self.consecutive_ids = consecutive_ids
        self.hub = hub
        self.metrics = metrics
        self._queue = Queue()
        self._writers = None
        # The turn of the batch taken last (the next one follows it).
        self._last_turn = _OVER
        self._stopping = False
        # Batches taken off the queue and not yet stored.
        self._in_flight = 0
        self._allowed = set()
        self._revocations = 0
        self.recall_seconds = 0
        # The app's DatabaseWatch (imchat.service.availability), set after construction.
        self.db_watch = None
        # The bus when several nodes share the users: it delivers (here and elsewhere).
        self.bus = None

    # -- storing -------------------------------------------------------------------

    def submit(self, sender_id, frame, origin=None):
        """Queue a checked frame for storage; returns an AsyncResult of Stored or Refused."""
        pending = _Pending(sender_id, frame, origin)
        if self._stopping:
            pending.result.set(Refused('the server is shutting down, send it again shortly'))
            return pending.result
        if self._writers is None:
            depth = PIPELINE_DEPTH if self.db.provider.dialect == 'MySQL' else 1
            self._writers = [gevent.spawn(self._run_writer) for _ in range(depth)]
        self._queue.put(pending)
        return pending.result

    def stop(self, timeout=5):
        """Refuse new messages and finish storing the ones in flight."""
        self._stopping = True
        self.wait_until_idle(timeout)
        if self._writers is not None:
            gevent.killall(self._writers, block=True, timeout=1)
        # Only when storing took longer than `timeout`:
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        _settle([(pending, Refused('the server is shutting down, send it again shortly'))
                 for pending in left if not pending.result.ready()])

    def wait_until_idle(self, timeout=5):
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._in_flight) and time.monotonic() < deadline:
            gevent.sleep(0.005)

    def _run_writer(self):
        # A batch's statements go in one query (insert_messages): this greenlet borrows
        # the pooled connections that allow it.
        with multi_statement_connections():
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
                    self._store_batch(batch, previous, turn)
                finally:
                    self._in_flight -= 1
            finally:
                turn.finish()

    @staticmethod
    def _wait_for_hold(previous):
        while not previous.over.is_set() and previous.after is None:
            previous.changed.wait()

    def _store_batch(self, batch, previous, turn):
        """Store `batch`, which follows the batch whose turn is `previous`, then fan it
        out and settle its senders' results; `turn` is this batch's."""
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
                    outcomes.append((pending, Refused('the message could not be stored, '
                                                      'please send it again'), None))
        # The batch before fans out first: ids increase on every connection.
        previous.over.wait()
        if self.bus is not None:
            self._publish(outcomes)
        else:
            for pending, outcome, wire in outcomes:
                if wire is not None:
                    try:
                        self._fan_out(pending, wire)
                    except Exception:
                        # Stored all the same: recipients get it when they next connect.
                        log.exception('delivering message %s failed', wire['msgid'])
        _settle([(pending, outcome) for pending, outcome, _ in outcomes])

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
            msg = 'the database is unavailable, send it again shortly'
            for _ in batch:
                if self.db_watch is not None:
                    self.db_watch.refuse(cause)
        elif pool_exhausted(error):
            log.warning('storing %d messages: %s', len(batch), error)
            msg = 'the server is busy, send it again shortly'
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
                refusal = self._refusal(pending.sender_id, pending.frame)
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
                                                  for row, msgid in zip(rows, ids)])),
                last=True, after=after, holding=holding)
        self.metrics.inc('imchat_messages_stored_total', len(rows))
        self.metrics.inc('imchat_message_batches_total')
        for pending, row, msgid in zip(accepted, rows, ids):
            stored = Stored(msgid, createat)
            if pending.key is not None:
                batch_keys[pending.key] = stored
            outcomes.append((pending, stored, message_wire(msgid, *row[:-1])))
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

    def _refusal(self, sender_id, frame):
        """Why `sender_id` may not send `frame`, or None when it may."""
        if frame.cmd == CMD_RECALL:
            return recall_refusal(self.db, sender_id, frame, self.recall_seconds)
        cate, refusal = ((CONTACT_FRIEND, 'user {} is not your friend')
                         if frame.cmd == CMD_SINGLE_MSG else
                         (CONTACT_COMMUNITY, 'you are not a member of community {}'))
        key = (cate, sender_id, frame.dstid)
        if key not in self._allowed:
            revocations = self._revocations
            if not self.db.Contact.exists(ownerid=sender_id, cate=cate, dstid=frame.dstid):
                return refusal.format(frame.dstid)
            if revocations == self._revocations:  # else the answer may predate a revocation
                self._remember(key)
        return None

    def may_write_to(self, sender_id, cmd, dstid):
        """True when `sender_id` may send to that friend (cmd 10) or community (11)."""
        cate = CONTACT_FRIEND if cmd == CMD_SINGLE_MSG else CONTACT_COMMUNITY
        if (cate, sender_id, dstid) in self._allowed:
            return True
        with db_session:
            return self._refusal(sender_id, Frame(None, cmd, dstid)) is None

    def forget_permission(self, cate, owner_id, dstid):
        """A friendship or membership ended: check the database again next time."""
        self._allowed.discard((cate, owner_id, dstid))
        self._revocations += 1

    def _remember(self, key):
        if len(self._allowed) >= PERMISSION_CACHE_MAX:
            self._allowed.clear()
        self._allowed.add(key)

    def _publish(self, outcomes):
        stored = sorted(((wire, encode(wire), pending.origin)
                         for pending, outcome, wire in outcomes if wire is not None),
                        key=lambda item: item[0]['msgid'])
        try:
            self.bus.publish(stored)
        except Exception:
            # Stored all the same: recipients get it when they next connect.
            log.exception('delivering %d messages failed', len(stored))

    def _fan_out(self, pending, wire):
        outgoing = encode(wire)
        to = recipients(wire)
        user_ids = to.user_ids or self.hub.online_members(to.community_id)
        self.hub.fan_out(user_ids, wire['msgid'], outgoing, origin=pending.origin)

    # -- reading back --------------------------------------------------------------

    def _visible_to(self, user_id):
        """A Pony query of the messages `user_id` may read."""
        Message, Contact = self.db.Message, self.db.Contact
        return select(
            m for m in Message
            if ((m.cmd == CMD_SINGLE_MSG or (m.cmd == CMD_RECALL and m.media == CMD_SINGLE_MSG))
                and (m.dstid == user_id or m.userid == user_id))
            or ((m.cmd == CMD_ROOM_MSG or (m.cmd == CMD_RECALL and m.media == CMD_ROOM_MSG))
                and exists(
                c for c in Contact if c.ownerid == user_id and c.cate == CONTACT_COMMUNITY
                and c.dstid == m.dstid and m.id > c.joined_msgid)))

    def backlog(self, user_id, since):
        """Yield pages of (msgid, OutgoingFrame) stored for `user_id` after `since`,
        in id order; each page in its own short transaction."""
        cursor = since
        while True:
            with db_session:
                rows = self._visible_to(user_id).filter(lambda m: m.id > cursor).order_by(
                    lambda m: m.id)[:BACKLOG_PAGE]
                page = [(row.id, encode(row.to_wire())) for row in rows]
            if not page:
                return
            yield page
            cursor = page[-1][0]
            if len(page) < BACKLOG_PAGE:
                return
            gevent.sleep(0)

    def replay_start(self, user_id, since, most):
        """Where a replay after `since` starts so that it holds at most `most` messages
        (the newest): `since` itself when there are no more than that (or `most` is 0)."""
        if not most:
            return since
        with db_session:
            skipped = self._visible_to(user_id).filter(lambda m: m.id > since).order_by(
                lambda m: desc(m.id))[most:most + 1]
            return skipped[0].id if skipped else since

    def resume_point(self, user_id):
        with db_session:
            user = self.db.User.get(id=user_id)
            return user.synced_msgid if user else 0

    def save_resume_point(self, user_id, msgid):
        """Raise the user's resume point to `msgid`, never lower it. One conditional
        UPDATE: a user's connections often close at once (a network drop, a logout), and
        a read-then-write would lose the race (Pony's OptimisticCheckError)."""
        with db_session:
            self.db.execute('UPDATE {} SET synced_msgid = $msgid WHERE id = $user_id '
                            'AND synced_msgid < $msgid'
                            .format(self.db.provider.quote_name('user')))

    def history(self, user_id, cmd, dstid, before=None, limit=HISTORY_DEFAULT):
        """A page of a conversation, oldest first, with ids below `before`.
        Raises BadRequest, NotFound, Forbidden."""
        limit = max(1, min(limit or HISTORY_DEFAULT, HISTORY_MAX))
        with db_session:
            query = self.conversation_query(user_id, cmd, dstid)
            if before:
                query = query.filter(lambda m: m.id < before)
            rows = query.order_by(lambda m: desc(m.id))[:limit]
            return [row.to_wire() for row in reversed(rows)]

    def conversation_query(self, user_id, cmd, dstid):
        """In a db_session: a Pony query of the messages of one conversation that
        `user_id` may read. Raises BadRequest, NotFound, Forbidden."""
        Message = self.db.Message
        if cmd == CMD_SINGLE_MSG:
            if not self.db.User.exists(id=dstid):
                raise NotFound('no user {}'.format(dstid), field='dstid')
            query = select(m for m in Message if m.cmd == CMD_SINGLE_MSG and (
                (m.userid == user_id and m.dstid == dstid)
                or (m.userid == dstid and m.dstid == user_id)))
        elif cmd == CMD_ROOM_MSG:
            membership = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                             dstid=dstid)
            if membership is None:
                if not self.db.Community.exists(id=dstid):
                    raise NotFound('no community {}'.format(dstid), field='dstid')
                raise Forbidden('you are not a member of community {}'.format(dstid))
            joined = membership.joined_msgid
            query = select(m for m in Message if m.cmd == CMD_ROOM_MSG and m.dstid == dstid
                           and m.id > joined)
        else:
            raise BadRequest('cmd: must be 10 (a user) or 11 (a community)', field='cmd')
        return query
