"""The message stream: storing a batch of messages under dense ids that commit in order.

Invariant: message ids are taken from the `message` row of the `stream` table, moved on
inside the very transaction that inserts the messages. That row stays locked until the
commit, so however many processes write, ids are dense (a rolled-back batch gives its
ids back) and a reader who sees id N committed has every id below it committed too.
The database's auto-increment is not used for messages.

On MySQL a batch is one round trip (take the ids, insert, the conversation rows, maybe
COMMIT), its values inlined as literals by model.sql; on SQLite the same statements go
one by one with bound values. `insert_messages` is the message writer's hot path: it
writes its rows with one % per row, not a call per value.
"""
from typing import Callable, Iterable, List, Optional, Sequence

from imchat.model.pool import enable_multi_statements
from imchat.model.sql import (LAST_MSGID_VARIABLE, MessageId, execute_sql, inline_values,
                              mysql_escapes, mysql_literal_writer, session_connection)

MESSAGE_COLUMNS = ('userid', 'cmd', 'dstid', 'media', 'content', 'pic', 'url', 'memo', 'amount',
                   'createat', 'clientid')

# A message row; its id is the batch's last less the number of rows after it.
_MESSAGE_ROW = "(({} - %d), %d, %d, %d, %d, '%s', '%s', '%s', '%s', %d, %d, %s)".format(
    LAST_MSGID_VARIABLE)


class StreamMoved(Exception):
    """A batch sent to follow another (insert_messages' `after`) found the stream not
    where that one left it: the other did not commit, or a third took ids between.
    Nothing of the batch was stored; store it again once the other is over."""


# MySQL's "Subquery returns more than 1 row": how the id-reading SET fails on purpose.
_ER_SUBQUERY_NO_1_ROW = 1242


def insert_messages(db, rows: Sequence[tuple], consecutive_ids: bool,
                    following: Optional[Callable[[list], Iterable[tuple]]] = None,
                    last: bool = False, after: Optional[tuple] = None,
                    holding: Optional[Callable[[list], None]] = None) -> list:
    """Insert message rows (tuples in MESSAGE_COLUMNS order) in the current db_session,
    in order, and return their ids; `following(ids)` gives statements, [(text with ?
    marks, values)], to run next in the same transaction (the conversation rows).
    `last`: the session writes nothing more, so on MySQL its COMMIT goes in the same
    round trip too (PooledMySQLProvider.commit then has nothing left to send).

    On MySQL a batch may be sent while the one before it is still committing, on another
    connection: its UPDATE of the stream then waits for that one's lock. `after` is
    (last id, anchor id, anchor userid, anchor clientid) of that batch: this one stores
    nothing (StreamMoved) unless the stream stands at that last id and the anchor, a
    row of that batch with an idempotency key (unique), is there, i.e. unless that
    batch committed and nothing took ids since. `holding(ids)` is called once this
    batch holds the stream, before the rest of its statements are answered.

    One multi-row INSERT instead of one per message: a busy server stores a whole batch
    at once. The ids are not the database's auto-increment: they are taken from the
    `message` stream (take_ids) in the same transaction, so they are dense (a
    rolled-back batch gives its ids back) and commit in id order, whichever process
    inserts (the stream's row stays locked until the commit). `consecutive_ids` is
    ignored: every batch gets consecutive ids.

    On MySQL the UPDATE that takes the ids, the INSERT and the following statements go
    in one round trip: a statement's round trip costs the writer a turn of the event
    loop, which under load is most of a batch's time. Their ids are then MessageId
    values, read from a session variable by the database.
    """
    if not rows:
        return []
    provider = db.provider
    head = 'INSERT INTO {} ({}) VALUES '.format(
        provider.quote_name('message'),
        ', '.join(provider.quote_name(c) for c in ('id',) + MESSAGE_COLUMNS))
    if provider.dialect != 'MySQL':
        ids = take_ids(db, 'message', len(rows))
        one = '(' + ', '.join(['?'] * (len(MESSAGE_COLUMNS) + 1)) + ')'
        # a tuple: Pony runs executemany() for a list
        params = tuple(value for msgid, row in zip(ids, rows) for value in (msgid,) + tuple(row))
        db._exec_sql(head + ', '.join([one] * len(rows)), params, start_transaction=True)
        for text, values in (following(ids) if following else ()):
            execute_sql(db, text, values, write=True)
        return ids
    count = len(rows)
    if last:
        db.flush()  # what the session changed through Pony goes before the COMMIT
    connection = session_connection(db, True)
    enable_multi_statements(connection)  # once a connection; the writer's keep it
    literal, escapes = mysql_literal_writer(connection), mysql_escapes(connection)
    symbolic = [MessageId(count - 1 - i) for i in range(count)]
    # Written here rather than value by value through `literal` (a third of the cost of
    # a batch's SQL): %d refuses anything but a number, str.translate anything but text.
    values = ', '.join([_MESSAGE_ROW % (
        back, userid, cmd, dstid, media, content.translate(escapes), pic.translate(escapes),
        url.translate(escapes), memo.translate(escapes), amount, createat,
        'NULL' if clientid is None else "'" + clientid.translate(escapes) + "'")
        for back, (userid, cmd, dstid, media, content, pic, url, memo, amount, createat,
                   clientid) in zip(range(count - 1, -1, -1), rows)])
    condition = 'ROW_COUNT() = 1'
    if after is not None:
        before, anchor_id, anchor_userid, anchor_key = after
        condition += (' AND LAST_INSERT_ID() = {:d} AND EXISTS (SELECT 1 FROM {} WHERE {} = '
                      '{:d} AND {} = {:d} AND {} = {})').format(
            before + count, provider.quote_name('message'), provider.quote_name('id'),
            anchor_id, provider.quote_name('userid'), anchor_userid,
            provider.quote_name('clientid'), literal(anchor_key))
    texts = [_take_ids_text(provider, count, 'message'),
             # Unless the condition holds (the UPDATE moved the stream, and as `after`
             # expects), this fails (a subquery of two rows, which IF evaluates only
             # then), and with it the batch: nothing after it runs.
             'SET {} = IF({}, LAST_INSERT_ID(), (SELECT 1 UNION SELECT 2))'
             .format(LAST_MSGID_VARIABLE, condition), head + values]
    texts.extend(inline_values(literal, text, values)
                 for text, values in (following(symbolic) if following else ()))
    if last:
        texts.append('COMMIT')
    cursor = db._exec_sql(';\n'.join(texts), None, start_transaction=True)
    # The UPDATE's reply comes first; read every statement's before anything else.
    moved, last_id = cursor.rowcount, cursor.lastrowid
    try:
        cursor.nextset()  # the SET, which fails unless the stream moved as it should
        if holding is not None:
            holding(list(range(last_id - count + 1, last_id + 1)))
        while cursor.nextset():
            pass
    except Exception as error:
        if moved != 1:
            raise LookupError('no stream {!r}'.format('message')) from None
        if after is not None and getattr(error, 'args', (None,))[:1] == (
                _ER_SUBQUERY_NO_1_ROW,):
            raise StreamMoved('the stream moved on from {}'.format(after[0])) from None
        raise
    if last:
        # The provider's commit (model.pool.PooledMySQLProvider) has nothing left to send.
        connection.imchat_commit_sent = True
    return list(range(last_id - count + 1, last_id + 1))


def _take_ids_text(provider, count, stream):
    # LAST_INSERT_ID(expr) hands the new position back with the UPDATE's own reply.
    if not stream.isidentifier():
        raise ValueError('not a stream name: {!r}'.format(stream))
    table, pos, name = (provider.quote_name(n) for n in ('stream', 'pos', 'name'))
    return "UPDATE {0} SET {1} = LAST_INSERT_ID({1} + {3:d}) WHERE {2} = '{4}'".format(
        table, pos, name, count, stream)


def take_ids(db, stream: str, count: int) -> List[int]:
    """Move `stream` on by `count` in the current transaction and return the ids taken.
    The UPDATE locks the stream's row (MySQL) or the database (SQLite) until commit, so
    a second process taking ids waits: ids are dense and commit in order."""
    provider = db.provider
    table, pos, name = (provider.quote_name(n) for n in ('stream', 'pos', 'name'))
    if provider.dialect == 'MySQL':
        cursor = db._exec_sql(_take_ids_text(provider, count, stream), None,
                              start_transaction=True)
        if cursor.rowcount != 1:
            raise LookupError('no stream {!r}'.format(stream))
        last = cursor.lastrowid
    else:
        moved = execute_sql(db, 'UPDATE {0} SET {1} = {1} + ? WHERE {2} = ?'.format(
            table, pos, name), (count, stream), write=True).rowcount
        if moved != 1:
            raise LookupError('no stream {!r}'.format(stream))
        last = execute_sql(db, 'SELECT {} FROM {} WHERE {} = ?'.format(pos, table, name),
                           (stream,), write=True).fetchone()[0]
    return list(range(last - count + 1, last + 1))


def ensure_stream(db, stream: str, table: str) -> None:
    """Create `stream`'s row if missing and move it past the highest id in `table`
    (rows written before the stream existed). Call inside a db_session."""
    provider = db.provider
    highest = db.select('SELECT MAX({}) FROM {}'.format(provider.quote_name('id'),
                                                       provider.quote_name(table)))[0] or 0
    row = db.Stream.get(name=stream)
    if row is None:
        db.Stream(name=stream, pos=highest)
    elif row.pos < highest:
        row.pos = highest

