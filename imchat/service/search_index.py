"""The search index, kept by a follower of the message table (docs/search.md).

The message writer is the hottest path of the server, so it does not index: a follower
reads the messages stored after its position (the `search` row of the `stream` table)
in id order, indexes them, and moves the position in the same transaction. Message ids
commit in id order (model.insert_messages), so "every id up to the position is
indexed" holds, and a message is searchable a poll interval (IMCHAT_SEARCH_POLL_MS)
after its commit.

Every node runs a follower; they never index a message twice: a pass locks the
position's row (SELECT ... FOR UPDATE on MySQL; SQLite's write lock) before it reads
the position, so a second node's pass waits, then starts where the first one ended.

A recall (cmd 14, `amount` = the recalled id) takes the recalled message out of the
index (`reindex_message`), and an edit (cmd 18, likewise) indexes its new text.
"""
import logging
import time
from itertools import chain
from typing import Iterable, Optional, Sequence, Tuple

import gevent
from gevent.event import Event
from pony.orm import db_session

from imchat.model.sql import execute_sql
from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.protocol import (CMD_EDIT, CMD_RECALL, CMD_ROOM_MSG, CMD_SINGLE_MSG,
                             MEDIA_CONTACT, MEDIA_FILE, MEDIA_LINK, MEDIA_NEWS, MEDIA_TEXT)
from imchat.util.greenlets import stop_gently
from imchat.util.segment import index_tokens

log = logging.getLogger(__name__)

STREAM = 'search'
# Messages indexed in one transaction: small enough that the message writer waiting
# behind it (SQLite's write lock, the event loop) waits a few milliseconds, large
# enough that a backfill of a million messages takes some thousands of transactions.
BATCH = 200
# The share of the time the follower takes at most while it has work and messages are
# still being stored: sending keeps 95% of it, and under a sustained burst the index
# falls behind. Once nothing new is stored the follower goes on at once and catches up
# at the speed of the database.
DUTY = 0.05
# Index rows written in one INSERT (3 values each: within SQLite's 32,766 marks).
ROWS_PER_INSERT = 1000
# Word prefixes stored in `search_term`: up to 4 characters (a longer query looks up
# its first 4 and the candidates are checked: "meeting" reads the messages with a word
# starting "meet", newest first, until a page is full). Each more would add about a
# row a word to every message indexed. SQLite too: FTS5 cannot read one conversation's
# matches alone, nor start from the rarest of several terms, and search_term can.
PREFIX_MAX = 4
# conversation_key: a 1:1 conversation is its two user ids, the lower one in the high
# half (user ids stay below 2**31: MySQL's and SQLite's auto-increment from 1 would need
# two billion users to pass it); a community is its id, negated.
_PAIR_SHIFT = 32

# Which fields of a message are read as text; never a URL (`url`, `pic`).
CONTENT_SEARCHED = (MEDIA_TEXT, MEDIA_NEWS, MEDIA_LINK, MEDIA_FILE)
MEMO_SEARCHED = (MEDIA_NEWS, MEDIA_LINK, MEDIA_CONTACT)


def searchable_text(media: int, content: str, memo: str) -> str:
    """The text of a message that search reads: a text's content; a news item's or a
    link's title and description; a contact card's name; a file's name."""
    parts = []
    if media in CONTENT_SEARCHED and content:
        parts.append(content)
    if media in MEMO_SEARCHED and memo:
        parts.append(memo)
    return '\n'.join(parts)


def prefix_max(db) -> int:
    return PREFIX_MAX


def conversation_key(cmd: int, sender: int, dstid: int) -> int:
    """The `conv` of search_term: one number for a conversation, the same whoever of
    its two people sent a 1:1 message."""
    if cmd == CMD_ROOM_MSG:
        return -dstid
    low, high = (sender, dstid) if sender < dstid else (dstid, sender)
    return (low << _PAIR_SHIFT) | high


def _is_sqlite(db):
    return db.provider.dialect == 'SQLite'


def _insert_docs(db, docs: Sequence[Tuple[int, int, str]]):
    """Index (msgid, conv, text): their tokens, and the text itself (FTS5 or search_doc)."""
    if not docs:
        return
    most = prefix_max(db)
    # In key order: each INSERT then walks the index's pages once, in order, instead of
    # jumping between them for every row.
    terms = [(token, msgid, conv) for msgid, conv, text in docs
             for token in index_tokens(text, most)]
    terms.sort()
    for start in range(0, len(terms), ROWS_PER_INSERT):
        chunk = terms[start:start + ROWS_PER_INSERT]
        execute_sql(db, 'INSERT INTO search_term (term, msgid, conv) VALUES ' +
                    ', '.join(['(?, ?, ?)'] * len(chunk)), tuple(chain.from_iterable(chunk)),
                    write=True)
    table = 'search_fts (rowid, body)' if _is_sqlite(db) else 'search_doc (msgid, body)'
    for start in range(0, len(docs), ROWS_PER_INSERT):
        chunk = docs[start:start + ROWS_PER_INSERT]
        execute_sql(db, 'INSERT INTO {} VALUES '.format(table) +
                    ', '.join(['(?, ?)'] * len(chunk)),
                    tuple(value for msgid, _, text in chunk for value in (msgid, text.lower())),
                    write=True)


def _unindex(db, msgid: int):
    """Take message `msgid` out of the index (nothing when it is not in it)."""
    if _is_sqlite(db):
        found = execute_sql(db, 'SELECT body FROM search_fts WHERE rowid = ?', (msgid,),
                            write=True).fetchone()
    else:
        found = execute_sql(db, 'SELECT body FROM search_doc WHERE msgid = ?', (msgid,),
                            write=True).fetchone()
    if found is None:
        return
    tokens = sorted(index_tokens(found[0], prefix_max(db)))
    if tokens:
        execute_sql(db, 'DELETE FROM search_term WHERE msgid = ? AND term IN ({})'.format(
            ', '.join(['?'] * len(tokens))), [msgid] + tokens, write=True)
    if _is_sqlite(db):
        execute_sql(db, 'DELETE FROM search_fts WHERE rowid = ?', (msgid,), write=True)
    else:
        execute_sql(db, 'DELETE FROM search_doc WHERE msgid = ?', (msgid,), write=True)


def _doc(row) -> Optional[Tuple[int, int, str]]:
    msgid, cmd, media, content, memo, _, sender, dstid = row
    if cmd not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        return None
    text = searchable_text(media, content, memo)
    return (msgid, conversation_key(cmd, sender, dstid), text) if text.strip() else None


_ROW_COLUMNS = 'id, cmd, media, content, memo, amount, userid, dstid'


def reindex_message(db, msgid: int):
    """In the current db_session: index message `msgid` as it is stored now, replacing
    what the index held for it (a recalled message, whose body is erased, leaves the
    index; an edited one is found by its new text). Call with the follower's lock held
    or after the follower has passed `msgid` (SearchIndexer.reindex)."""
    _unindex(db, msgid)
    row = execute_sql(db, 'SELECT {} FROM message WHERE id = ?'.format(_ROW_COLUMNS),
                      (msgid,), write=True).fetchone()
    doc = _doc(row) if row is not None else None
    if doc is not None:
        _insert_docs(db, [doc])


def index_rows(db, rows: Iterable[tuple]):
    """Index stored message rows (_ROW_COLUMNS, in id order) that the index has not seen:
    messages are added, a recall takes its message out, an edit indexes its message's
    new text (both name their message in `amount`)."""
    docs = []
    for row in rows:
        if row[1] in (CMD_RECALL, CMD_EDIT):
            _insert_docs(db, docs)
            docs = []
            reindex_message(db, row[5])
            continue
        doc = _doc(row)
        if doc is not None:
            docs.append(doc)
    _insert_docs(db, docs)


class SearchIndexer:
    """The follower: one greenlet a process, indexing what is stored after its position."""

    def __init__(self, db, poll_seconds: float = 0.2, batch: int = BATCH):
        self.db = db
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._greenlet = None
        self._stopping = False
        self._stopped = Event()  # wakes the follower from its poll wait to stop
        self.head = 0  # the newest message id stored, as the last pass read it

    def start(self):
        self._ensure_position()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self):
        self._stopping = True
        self._stopped.set()
        if self._greenlet is not None:
            stop_gently([self._greenlet], timeout=2)
            self._greenlet = None

    def position(self) -> int:
        """The highest message id indexed (every lower one is too)."""
        with db_session:
            row = self.db.Stream.get(name=STREAM)
            return row.pos if row is not None else 0

    def catch_up(self, batch: Optional[int] = None) -> int:
        """Index everything committed so far, here and now, `batch` messages a
        transaction (default: the follower's); returns the position."""
        self._ensure_position()
        while self.index_next(batch):
            pass
        return self.position()

    def reindex(self, msgid: int):
        """Index message `msgid` again now (an edit), under the follower's lock."""
        with db_session:
            position = self._lock_position()
            if msgid <= position:
                reindex_message(self.db, msgid)
            # Else the follower has not reached it and will index it as it then is.

    def index_next(self, batch: Optional[int] = None) -> bool:
        """One pass: index up to `batch` messages after the position, in one transaction;
        False when there was nothing to index."""
        db = self.db
        batch = batch or self.batch
        with db_session:
            head, position = self._positions()
        self.head = head
        if position >= head:
            return False
        with db_session:
            position = self._lock_position()
            rows = execute_sql(db, 'SELECT {} FROM message WHERE id > ? ORDER BY id LIMIT ?'
                               .format(_ROW_COLUMNS), (position, batch),
                               write=True).fetchall()
            if not rows:
                return False
            index_rows(db, rows)
            execute_sql(db, 'UPDATE stream SET pos = ? WHERE name = ?',
                        (rows[-1][0], STREAM), write=True)
        return len(rows) == batch

    def _positions(self) -> Tuple[int, int]:
        found = dict(execute_sql(self.db, 'SELECT name, pos FROM stream WHERE name IN (?, ?)',
                                 ('message', STREAM)).fetchall())
        return found.get('message', 0), found.get(STREAM, 0)

    def _lock_position(self) -> int:
        lock = '' if _is_sqlite(self.db) else ' FOR UPDATE'
        row = execute_sql(self.db, 'SELECT pos FROM stream WHERE name = ?' + lock,
                          (STREAM,), write=True).fetchone()
        if row is None:
            raise LookupError('no stream {!r}'.format(STREAM))
        return row[0]

    def _ensure_position(self):
        for attempt in range(3):
            try:
                with db_session:
                    if self.db.Stream.get(name=STREAM) is None:
                        self.db.Stream(name=STREAM, pos=0)
                return
            except Exception:
                # Another node made the row at the same moment.
                if attempt == 2:
                    raise
                gevent.sleep(0.1)

    def _run(self):
        while not self._stopping:
            try:
                heads = []
                while not self._stopping:
                    started = time.monotonic()
                    more = self.index_next()
                    busy = time.monotonic() - started
                    if not more:
                        break
                    # The follower shares the machine with the message writer (on
                    # SQLite its statements hold the event loop; on MySQL they take the
                    # database's CPU). While messages are still being stored it waits
                    # long enough after each pass to stay within DUTY of the time, so a
                    # busy server falls behind on indexing rather than on sending; once
                    # nothing new was stored since its last pass it goes on at once and
                    # catches up. (A share of a fifth cost the pairs phase of
                    # bench/chat_bench.py a fifth of its messages/s; going on whenever
                    # the event loop idled cost more on MariaDB, whose answers leave
                    # the loop idle while the database is busy.)
                    heads = heads[-1:] + [self.head]
                    if heads[0] != heads[-1] or len(heads) == 1:
                        self._stopped.wait(busy * (1 - DUTY) / DUTY)
                    else:
                        gevent.sleep(0)
            except Exception as error:
                # A database outage is logged once, by whoever meets it serving a request
                # (service.availability); the follower only waits it out.
                if unavailable_cause(error) is None and not pool_exhausted(error):
                    log.exception('indexing messages for search failed; trying again')
                self._stopped.wait(self.poll_seconds * 10)
            self._stopped.wait(self.poll_seconds)

