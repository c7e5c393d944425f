"""Pony entities, declared on a fresh `Database` per app.

A Pony `Database` can be bound once, so each `create_app` gets its own: tests build
many apps on many throw-away databases, and production builds one. Services reach
the entities as attributes of that database (`db.User`). Models only declare
columns and small `to_dict` views; services own every transaction.
"""
import sqlite3

import pymysql
from pony.orm import Database, Optional, PrimaryKey, Required, composite_index, composite_key
from pymysql.constants import ER
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from pymysql.converters import _escape_table as BACKSLASH_ESCAPES

from imchat.model.engine import enable_multi_statements
from imchat.model.push import define_push_entities
from imchat.protocol import message_wire

SEX_WOMEN = 'W'
SEX_MEN = 'M'
SEX_UNKNOWN = 'U'
SEXES = (SEX_WOMEN, SEX_MEN, SEX_UNKNOWN)

# Contact.cate: what the contact's dstid names.
CONTACT_FRIEND = 1
CONTACT_COMMUNITY = 2

MOBILE_MAX = 20
NICKNAME_MAX = 40
AVATAR_MAX = 500
MEMO_MAX = 140
COMMUNITY_NAME_MAX = 30
CONTENT_MAX = 4000
URL_MAX = 1000


def define_database():
    db = Database()

    class User(db.Entity):
        _table_ = 'user'
        id = PrimaryKey(int, auto=True, size=64)
        mobile = Required(str, MOBILE_MAX, unique=True)
        passwd = Required(str, 200)
        nickname = Required(str, NICKNAME_MAX)
        avatar = Optional(str, AVATAR_MAX)
        sex = Required(str, 2, default=SEX_UNKNOWN)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)
        # Highest message id written to any of this user's connections; a connection
        # that does not say what it already has (`since`) resumes after it.
        synced_msgid = Required(int, size=64, default=0)

        def to_public(self, online=False):
            return {'id': self.id, 'nickname': self.nickname, 'avatar': self.avatar,
                    'sex': self.sex, 'memo': self.memo, 'online': int(bool(online))}

        def to_own(self, online=False):
            view = self.to_public(online)
            view['mobile'] = self.mobile
            view['createat'] = self.createat
            return view

    class Token(db.Entity):
        _table_ = 'token'
        # SHA-256 of the token: the database never holds a usable token.
        key = PrimaryKey(str, 64)
        userid = Required(int, size=64, index=True)
        createat = Required(int, size=64)
        expireat = Required(int, size=64)

    class Contact(db.Entity):
        _table_ = 'contact'
        id = PrimaryKey(int, auto=True, size=64)
        ownerid = Required(int, size=64)
        dstid = Required(int, size=64)
        cate = Required(int)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)
        # For a community membership: the highest message id when the member joined;
        # they receive the group's messages after it.
        joined_msgid = Required(int, size=64, default=0)
        composite_key(ownerid, cate, dstid)
        composite_index(cate, dstid)

    class Community(db.Entity):
        _table_ = 'community'
        id = PrimaryKey(int, auto=True, size=64)
        name = Required(str, COMMUNITY_NAME_MAX)
        ownerid = Required(int, size=64, index=True)
        icon = Optional(str, AVATAR_MAX)
        cate = Required(int, default=0)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)

        def to_dict(self):
            return {'id': self.id, 'name': self.name, 'ownerid': self.ownerid,
                    'icon': self.icon, 'cate': self.cate, 'memo': self.memo,
                    'createat': self.createat}

    class Message(db.Entity):
        _table_ = 'message'
        id = PrimaryKey(int, auto=True, size=64)
        userid = Required(int, size=64)
        cmd = Required(int)
        dstid = Required(int, size=64)
        media = Required(int)
        content = Optional(str, CONTENT_MAX)
        pic = Optional(str, URL_MAX)
        url = Optional(str, URL_MAX)
        memo = Optional(str, MEMO_MAX)
        amount = Required(int, size=64, default=0)
        createat = Required(int, size=64)
        # The sender's own id for the message when it can serve as an idempotency key
        # (see service.frame.idempotency_key); NULL otherwise. Unique for a sender,
        # compared byte for byte (migration 0003): the writer relies on it.
        clientid = Optional(str, 64, nullable=True)
        composite_index(cmd, dstid, id)
        composite_index(userid, id)
        composite_key(userid, clientid)

        def to_wire(self):
            return message_wire(self.id, self.userid, self.cmd, self.dstid, self.media,
                                self.content, self.pic, self.url, self.memo, self.amount,
                                self.createat)

    class Upload(db.Entity):
        """One stored upload, for the daily quota and for removing unreferenced files."""
        _table_ = 'upload'
        id = PrimaryKey(int, auto=True, size=64)
        name = Required(str, 64, index=True)
        userid = Required(int, size=64)
        size = Required(int, size=64)
        createat = Required(int, size=64)
        composite_index(userid, createat)

    class Conversation(db.Entity):
        """One user's view of one conversation (target 10: a friend, 11: a community),
        kept in the same transaction as the messages, so the chat list is one indexed
        query however many messages are stored."""
        _table_ = 'conversation'
        ownerid = Required(int, size=64)
        target = Required(int)
        dstid = Required(int, size=64)
        last_msgid = Required(int, size=64, default=0)
        # Read up to here (only ever moves forward); unread counts others' messages after it.
        readmsgid = Required(int, size=64, default=0)
        unread = Required(int, size=64, default=0)
        # The key is the primary key (migration 0004): InnoDB finds the row the writer's
        # upsert updates in its clustered index, without inserting one and taking it back.
        # No index on (ownerid, last_msgid): each message would move its rows in it
        # (migration 0002). The list sorts one user's rows, found by this key.
        PrimaryKey(ownerid, target, dstid)
        composite_index(target, dstid)

    class Stream(db.Entity):
        # The position of a dense sequence: `message` is the highest message id taken.
        # Ids are taken by moving it inside the inserting transaction (see
        # insert_messages), so they commit in id order across processes.
        _table_ = 'stream'
        name = PrimaryKey(str, 32)
        pos = Required(int, size=64)

    class Presence(db.Entity):
        # Who is connected to which node, for `online` across nodes; a row counts only
        # until `expireat` (ms), which the node refreshes while it lives.
        _table_ = 'presence'
        userid = Required(int, size=64)
        node = Required(str, 100)
        expireat = Required(int, size=64, index=True)
        PrimaryKey(userid, node)

    class LimitEvent(db.Entity):
        # One counted event (a failed login) of a limit shared by every node when there
        # is no Redis to count in (service.shared_limits).
        _table_ = 'limit_event'
        id = PrimaryKey(int, auto=True, size=64)
        key = Required(str, 200)
        at = Required(int, size=64)
        composite_index(key, at)

    define_push_entities(db)  # issue 21
    return db


def is_duplicate_key(error):
    """Whether `error` (PyMySQL's, sqlite3's, or Pony's wrapping either) is a unique
    key refusing a row: MySQL's error 1062, SQLite's UNIQUE constraint."""
    error = getattr(error, 'original_exc', None) or error
    if isinstance(error, pymysql.err.IntegrityError):
        return bool(error.args) and error.args[0] == ER.DUP_ENTRY
    if isinstance(error, sqlite3.IntegrityError):
        return str(error).startswith('UNIQUE constraint failed')
    return False


MESSAGE_COLUMNS = ('userid', 'cmd', 'dstid', 'media', 'content', 'pic', 'url', 'memo', 'amount',
                   'createat', 'clientid')

# Statement texts split at their ? marks, by text; cleared when this many pile up (a
# text's marks vary with a batch's size, so there are a few hundred in use).
_SPLIT_TEXTS = {}
SPLIT_TEXTS_MAX = 2000


def execute_sql(db, text, params=(), write=False):
    """Run `text`, whose values are ? marks, in the current db_session; return the cursor.

    On MySQL the values are written into the text here, each as the literal PyMySQL
    would write: PyMySQL escapes each value through several Python calls (about 1.5 µs
    a value, 12 values a message), which was the largest single cost of storing a
    batch. SQLite binds them in C. Values are int, str or None, nothing else."""
    if db.provider.dialect == 'MySQL':
        if params:
            text = _inline(db, text, params, write)
        return db._exec_sql(text, None, start_transaction=write)
    return db._exec_sql(text, tuple(params), start_transaction=write)


def _session_connection(db, write):
    """The current db_session's DBAPI connection, taken as Pony's _exec_sql takes it."""
    cache = db._get_cache()
    if write:
        cache.immediate = True
    return cache.prepare_connection_for_query_execution()


def _inline(db, text, params, write):
    return _inline_with(mysql_literal_writer(_session_connection(db, write)), text, params)


def _inline_with(literal, text, params):
    parts = _SPLIT_TEXTS.get(text)
    if parts is None:
        if len(_SPLIT_TEXTS) >= SPLIT_TEXTS_MAX:
            _SPLIT_TEXTS.clear()
        parts = _SPLIT_TEXTS[text] = text.split('?')
    if len(parts) != len(params) + 1:
        raise ValueError('{} values for {} marks'.format(len(params), len(parts) - 1))
    out = [parts[0]]
    int_type, str_type = int, str
    for value, part in zip(params, parts[1:]):
        # Most values are ints (the conversation rows): written here, without a call.
        out.append(str_type(value) if type(value) is int_type else literal(value))
        out.append(part)
    return ''.join(out)


class MessageId:
    """The id of a message of the batch being inserted, written into SQL before the id is
    known: on MySQL a batch's statements go in one round trip with the UPDATE that takes
    its ids, which leaves the last one in a session variable; this is that less `back`."""

    __slots__ = ('back', 'sql')

    def __init__(self, back):
        self.back = back
        self.sql = '({} - {:d})'.format(_LAST_ID, back)  # each is written about twice

    def __repr__(self):
        return 'MessageId(last - {})'.format(self.back)


# The session variable holding the last id a batch took (see insert_messages).
_LAST_ID = '@imchat_last_msgid'


# Under NO_BACKSLASH_ESCAPES a quote is doubled and nothing else is escaped.
QUOTE_DOUBLING = {ord("'"): "''"}


def mysql_escapes(connection):
    """The str.translate table escaping text for a string literal of `connection`'s
    session as PyMySQL escapes (its escape_string's table; quotes doubled when the
    session's sql_mode has NO_BACKSLASH_ESCAPES)."""
    if connection.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return QUOTE_DOUBLING
    return BACKSLASH_ESCAPES


def mysql_literal_writer(connection):
    """A function writing an int, str, None or MessageId as a MySQL literal, escaped for
    `connection`'s session (mysql_escapes)."""
    escapes = mysql_escapes(connection)
    int_type, str_type = int, str

    def literal(value):
        kind = type(value)
        if kind is str_type:
            return "'" + value.translate(escapes) + "'"
        if kind is int_type:
            return str_type(value)
        if value is None:
            return 'NULL'
        if kind is MessageId:
            return value.sql
        raise TypeError('cannot write a {} into SQL'.format(kind.__name__))
    return literal


# A message row; its id is the batch's last less the number of rows after it.
_MESSAGE_ROW = "(({} - %d), %d, %d, %d, %d, '%s', '%s', '%s', '%s', %d, %d, %s)".format(_LAST_ID)


class StreamMoved(Exception):
    """A batch sent to follow another (insert_messages' `after`) found the stream not
    where that one left it: the other did not commit, or a third took ids between.
    Nothing of the batch was stored; store it again once the other is over."""


# MySQL's "Subquery returns more than 1 row": how the id-reading SET fails on purpose.
_ER_SUBQUERY_NO_1_ROW = 1242


def insert_messages(db, rows, consecutive_ids, following=None, last=False, after=None,
                    holding=None):
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
    inserts (the stream's row stays locked until the commit). `consecutive_ids` is kept
    for callers; every batch now gets consecutive ids.

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
    connection = _session_connection(db, True)
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
             .format(_LAST_ID, condition), head + values]
    texts.extend(_inline_with(literal, text, values)
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
        # The provider's commit (engine.PooledMySQLProvider) has nothing left to send.
        connection.imchat_commit_sent = True
    return list(range(last_id - count + 1, last_id + 1))


def _take_ids_text(provider, count, stream):
    # LAST_INSERT_ID(expr) hands the new position back with the UPDATE's own reply.
    if not stream.isidentifier():
        raise ValueError('not a stream name: {!r}'.format(stream))
    table, pos, name = (provider.quote_name(n) for n in ('stream', 'pos', 'name'))
    return "UPDATE {0} SET {1} = LAST_INSERT_ID({1} + {3:d}) WHERE {2} = '{4}'".format(
        table, pos, name, count, stream)


def take_ids(db, stream, count):
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


def ensure_stream(db, stream, table):
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

