"""Running SQL the services write themselves, beside Pony's queries, in the current
db_session: statements with ? marks, their values written in as MySQL literals, and
recognising a duplicate key on either backend.

Why it reaches into Pony's private `Database._exec_sql` and `_get_cache`: the public
`db.execute` takes its values from `$name` expressions evaluated in the caller's frame
(parsed out of the text on every call), so it would read a `$` inside a value written
into the text as one, and it always opens a transaction. The message writer
(model.stream) sends several statements in one round trip on MySQL, their values
inlined here. `_exec_sql` runs a text as `db.execute` does, without the parsing;
`_get_cache().prepare_connection_for_query_execution()` is how Pony itself takes the
session's connection, which the literal writer needs for its escaping rules.
Pony is pinned (requirements.txt), and tests/test_message_store.py drives both on both
backends: an upgrade that changes them fails there.
"""
import sqlite3
from typing import Any, Callable, Iterable, Optional, Sequence

import pymysql
from pony import orm
from pymysql.constants import ER
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from pymysql.converters import _escape_table as BACKSLASH_ESCAPES

from imchat.util.clock import now_ms

# The MySQL session variable holding the last id a batch of messages took
# (model.stream.insert_messages); a MessageId is written as this less its place.
LAST_MSGID_VARIABLE = '@imchat_last_msgid'

# Statement texts split at their ? marks, by text; cleared when this many pile up (a
# text's marks vary with a batch's size, so there are a few hundred in use).
_SPLIT_TEXTS = {}
SPLIT_TEXTS_MAX = 2000

# Under NO_BACKSLASH_ESCAPES a quote is doubled and nothing else is escaped.
QUOTE_DOUBLING = {ord("'"): "''"}


def is_duplicate_key(error: BaseException) -> bool:
    """Whether `error` (PyMySQL's, sqlite3's, or Pony's wrapping either) is a unique
    key refusing a row: MySQL's error 1062, SQLite's UNIQUE constraint."""
    error = getattr(error, 'original_exc', None) or error
    if isinstance(error, pymysql.err.IntegrityError):
        return bool(error.args) and error.args[0] == ER.DUP_ENTRY
    if isinstance(error, sqlite3.IntegrityError):
        return str(error).startswith('UNIQUE constraint failed')
    return False


def execute_sql(db, text: str, params: Iterable = (), write: bool = False):
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


def session_connection(db, write: bool):
    """The current db_session's DBAPI connection, taken as Pony's _exec_sql takes it."""
    cache = db._get_cache()
    if write:
        cache.immediate = True
    return cache.prepare_connection_for_query_execution()


def _inline(db, text, params, write):
    return inline_values(mysql_literal_writer(session_connection(db, write)), text, params)


def inline_values(literal: Callable[[Any], str], text: str, params) -> str:
    """`text` with each ? mark replaced by its value, written by `literal` (ints as
    they are). Raises ValueError when the values and the marks do not pair up."""
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

    def __init__(self, back: int):
        self.back = back
        self.sql = '({} - {:d})'.format(LAST_MSGID_VARIABLE, back)  # each is written about twice

    def __repr__(self):
        return 'MessageId(last - {})'.format(self.back)


def mysql_escapes(connection) -> dict:
    """The str.translate table escaping text for a string literal of `connection`'s
    session as PyMySQL escapes (its escape_string's table; quotes doubled when the
    session's sql_mode has NO_BACKSLASH_ESCAPES)."""
    if connection.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return QUOTE_DOUBLING
    return BACKSLASH_ESCAPES


def mysql_literal_writer(connection) -> Callable[[Optional[object]], str]:
    """A function writing an int, str, None or MessageId as a MySQL literal, escaped for
    `connection`'s session (mysql_escapes). Raises TypeError for anything else."""
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


def upsert_sql(db, table: str, columns: Sequence[str], keys: Sequence[str],
               update: Sequence[str], count: int) -> str:
    """An INSERT of `count` rows of `columns` (? marks) that, where a row with the same
    `keys` exists, sets its `update` columns to the new row's values instead. A node
    writing only its own rows this way, in key order, never reads them first: writers
    on several nodes neither wait on each other nor deadlock."""
    row = '(' + ', '.join(['?'] * len(columns)) + ')'
    if db.provider.dialect == 'MySQL':
        tail = ' ON DUPLICATE KEY UPDATE ' + ', '.join(
            '{0} = VALUES({0})'.format(column) for column in update)
    else:
        tail = ' ON CONFLICT ({}) DO UPDATE SET '.format(', '.join(keys)) + ', '.join(
            '{0} = excluded.{0}'.format(column) for column in update)
    return 'INSERT INTO {} ({}) VALUES {}{}'.format(
        table, ', '.join(columns), ', '.join([row] * count), tail)


def remove_expired(db, table: str, most: int) -> None:
    """Rows of `table` (keyed by userid and node, with an `expireat`) of nodes that
    died (no refresh within their ttl): found without locking, then deleted one by one
    by their key, still only if expired, so a range lock never meets another node's
    upsert. At most `most` a call."""
    now = now_ms()
    with orm.db_session:
        expired = sorted(execute_sql(
            db, 'SELECT userid, node FROM {} WHERE expireat <= ?'.format(table), [now]
        ).fetchall())
    for user_id, node in expired[:most]:
        with orm.db_session:
            execute_sql(db, 'DELETE FROM {} WHERE userid = ? AND node = ? AND expireat <= ?'
                        .format(table), [user_id, node, now], write=True)
