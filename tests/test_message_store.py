"""Storing messages in batches: the ids handed back are the ids the rows got."""
import contextlib

import pytest
from pony.orm import db_session

from imchat.model.engine import multirow_insert_ids_are_consecutive
from imchat.model.pool import multi_statement_connections
from imchat.model.stream import insert_messages
from tests.conftest import _mysql_admin
from tests.harness import wait_for


@pytest.mark.parametrize('consecutive', [True, False])
def test_batch_insert_returns_each_rows_own_id(app, consecutive):
    db = app.extensions['imchat'].db
    with db_session:
        first = insert_messages(db, [(1, 10, 2, 1, 'warm-up', '', '', '', 0, 1, None)],
                                consecutive)
    rows = [(7, 10, 8, 1, 'message %d' % i, '', '', '', i, 1000 + i, 'key-%06d' % i)
            for i in range(50)]
    with db_session:
        ids = insert_messages(db, rows, consecutive)
    assert ids == sorted(ids) and ids[0] > first[0]
    with db_session:
        for msgid, row in zip(ids, rows):
            stored = db.Message[msgid]
            assert (stored.content, stored.amount, stored.createat, stored.clientid) == (
                row[4], row[8], row[9], row[10])


def test_empty_batch(app):
    with db_session:
        assert insert_messages(app.extensions['imchat'].db, [], True) == []


def test_this_servers_autoincrement_is_consecutive(app):
    # SQLite always; MariaDB here runs innodb_autoinc_lock_mode=1.
    assert multirow_insert_ids_are_consecutive(app.extensions['imchat'].db)


def test_a_failed_batch_is_retried_one_by_one(app, auth, monkeypatch):
    """One message that cannot be stored must not sink the others in its batch."""
    from imchat.service.frame import Frame
    from imchat.service.outcomes import Refused, Stored

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    messages = app.extensions['imchat'].writer
    good = [Frame(i, 10, bob.id, 1, content='ok %d' % i) for i in range(3)]
    bad = Frame(99, 10, bob.id, 1, content='\ud800')  # a lone surrogate: no driver encodes it
    results = [messages.submit(alice.id, frame) for frame in good[:2] + [bad] + good[2:]]
    outcomes = [result.get(timeout=10) for result in results]
    assert [type(o) for o in outcomes] == [Stored, Stored, Refused, Stored]
    assert 'could not be stored' in outcomes[2].msg


def test_the_metrics_count_messages_stored_and_the_transactions_that_stored_them(app, auth):
    from imchat.service.frame import Frame

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    services = app.extensions['imchat']
    messages, metrics = services.writer, services.metrics
    stored0 = metrics.value('imchat_messages_stored_total')
    batches0 = metrics.value('imchat_message_batches_total')
    # Queued before the writer runs: one batch. Then one on its own.
    results = [messages.submit(alice.id, Frame(i, 10, bob.id, 1, content='m %d' % i))
               for i in range(5)]
    assert len({result.get(timeout=10).msgid for result in results}) == 5
    messages.submit(alice.id, Frame(9, 10, bob.id, 1, content='alone')).get(timeout=10)
    assert metrics.value('imchat_messages_stored_total') - stored0 == 6
    assert metrics.value('imchat_message_batches_total') - batches0 == 2


def test_a_long_client_id_is_stored_once_however_often_it_is_sent(app, auth):
    from imchat.service.frame import Frame
    from imchat.service.outcomes import Stored

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    messages = app.extensions['imchat'].writer
    frame = Frame('c-lf8q2x-17', 10, bob.id, 1, content='once')
    # Twice in one batch, then again in a later one.
    first, twin = messages.submit(alice.id, frame), messages.submit(alice.id, frame)
    first, twin = first.get(timeout=10), twin.get(timeout=10)
    again = messages.submit(alice.id, frame).get(timeout=10)
    assert isinstance(first, Stored)
    assert (twin.msgid, again.msgid) == (first.msgid, first.msgid)
    assert again.createat == first.createat
    # Another sender may use the same key, and a short id is never a key.
    carol = auth.register()
    auth.befriend(carol, bob)
    assert messages.submit(carol.id, frame).get(timeout=10).msgid != first.msgid
    short = Frame(1, 10, bob.id, 1, content='original client')
    ids = {messages.submit(alice.id, short).get(timeout=10).msgid for _ in range(2)}
    assert len(ids) == 2
    history = app.extensions['imchat'].reader.history(bob.id, 10, alice.id)
    assert [m['content'] for m in history] == ['once', 'original client', 'original client']


# Text that SQL escaping must carry through unchanged: quotes of both kinds, backslashes
# before quotes, a NUL-like escape, MySQL's wildcards, the ? mark of a statement text,
# line breaks, emoji beyond the BMP and a Ctrl-Z (MySQL's \Z).
AWKWARD_TEXTS = ["it's", 'say "hi"', "\\'; DROP TABLE message; --", 'back\\slash\\',
                 '100% _sure_?', 'a ? b ? c', 'line\nbreak\r\ttab', '😀 你好 \u200b',
                 '\x1a end', "''", '\\', "\\\\'"]


def test_awkward_text_is_stored_exactly_as_sent(app, auth):
    from imchat.service.frame import Frame

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    svc = app.extensions['imchat']
    frames = [Frame('awkward-{:04d}'.format(i), 10, bob.id, 1, content=text, memo=text[:140])
              for i, text in enumerate(AWKWARD_TEXTS)]
    outcomes = [result.get(timeout=10) for result in
                [svc.writer.submit(alice.id, frame) for frame in frames]]
    with db_session:
        for frame, outcome in zip(frames, outcomes):
            row = svc.db.Message[outcome.msgid]
            assert (row.content, row.memo, row.clientid) == (frame.content, frame.memo,
                                                             frame.client_id)
    # The idempotency lookup writes the same keys into its own statement.
    again = [svc.writer.submit(alice.id, frame).get(timeout=10) for frame in frames]
    assert [o.msgid for o in again] == [o.msgid for o in outcomes]


@pytest.mark.parametrize('sql_mode', ['', 'NO_BACKSLASH_ESCAPES'])
def test_mysql_literals_read_back_exactly_under_either_sql_mode(mysql_reachable, sql_mode):
    """What imchat writes into statement text reads back as the value, whether or not
    the session takes backslash escapes."""
    if mysql_reachable is not True:
        pytest.skip('MySQL is not reachable')
    from tests.conftest import _mysql_admin

    from imchat.model.sql import mysql_literal_writer

    con = _mysql_admin()
    try:
        with con.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = '{}'".format(sql_mode))
            literal = mysql_literal_writer(con)
            values = AWKWARD_TEXTS + ['\x00nul', -5, 0, 2 ** 63 - 1, None]
            cursor.execute('SELECT ' + ', '.join(literal(v) for v in values))
            assert list(cursor.fetchone()) == values
            for other in (1.5, b'bytes', True, ['list']):  # nothing else goes into SQL
                with pytest.raises(TypeError):
                    literal(other)
    finally:
        con.close()



@contextlib.contextmanager
def _app_of_one_connection(app_config):
    """The app on a pool of one MySQL connection, so that a session's counters are the
    connection's (the writer's, read inside multi_statement_connections)."""
    from imchat import create_app

    app_config['DB_POOL_SIZE'] = 1
    app = create_app(app_config)
    try:
        yield app.extensions['imchat']
    finally:
        app.extensions['imchat'].close()


def taken(messages, count, what):
    """Wait until the writer has taken every queued message, in `count` batches."""
    wait_for(lambda: messages._in_flight == count and messages._queue.empty(),
             what='{} taken by the writer'.format(what))


def _session_status(db, name):
    return int(db.select('SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS '
                         "WHERE VARIABLE_NAME = '{}'".format(name.upper()))[0])


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_a_committed_session_goes_back_to_the_pool_without_a_rollback(app_config):
    """A session that ended in a COMMIT goes back to the pool without a ROLLBACK (one
    round trip less on every write, the message writer's included), and the next
    session on that connection still reads what others committed meanwhile."""
    with _app_of_one_connection(app_config) as svc:  # every session gets the same one
        db = svc.db
        with db_session:
            rollbacks = _session_status(db, 'Com_rollback')
            assert db.User.select().count() == 0
        with db_session:
            db.User(mobile='13700000001', passwd='x', nickname='w', createat=1)
        with db_session:
            assert _session_status(db, 'Com_rollback') == rollbacks
            assert db.User.exists(mobile='13700000001')
        other = _mysql_admin()
        try:
            with other.cursor() as cursor:
                cursor.execute('INSERT INTO `{}`.`user` (mobile, passwd, nickname, avatar, sex, '
                               "memo, createat, synced_msgid) VALUES ('13700000002', 'x', 'v', "
                               "'', 'U', '', 1, 0)".format(app_config['DATABASE_URL']
                                                           .rsplit('/', 1)[1]))
            other.commit()
        finally:
            other.close()
        with db_session:
            assert db.User.select().count() == 2
            assert _session_status(db, 'Com_rollback') == rollbacks


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_the_idempotency_lookup_reads_the_index_not_the_table(app_config):
    """Each batch looks its idempotency keys up in the (userid, clientid) index. Asked
    as `userid IN (..) AND clientid IN (..)`, MariaDB read the whole message table for
    every batch instead: on a big table, seconds a batch."""
    from imchat.service.frame import Frame

    with _app_of_one_connection(app_config) as svc:
        db = svc.db
        senders = list(range(1, 51))
        with db_session:
            for start in range(0, 20000, 1000):
                insert_messages(db, [(senders[i % 50], 10, 99, 1, 'old', '', '', '', 0, 1,
                                      'old-key-{:06d}'.format(i))
                                     for i in range(start, start + 1000)], True)
        with db_session:
            for sender in senders:
                db.Contact(ownerid=sender, dstid=99, cate=1, createat=1)
        with multi_statement_connections(), db_session:  # the writer's connection
            before = _session_status(db, 'Handler_read_rnd_next')
        frames = [(senders[i % 50], Frame('new-key-{:06d}'.format(i), 10, 99, 1, content='x'))
                  for i in range(100)] + [(senders[7], Frame('old-key-000007', 10, 99, 1,
                                                             content='again'))]
        outcomes = [result.get(timeout=20) for result in
                    [svc.writer.submit(sender, frame) for sender, frame in frames]]
        with multi_statement_connections(), db_session:
            scanned = _session_status(db, 'Handler_read_rnd_next') - before
            assert outcomes[-1].msgid == db.Message.get(clientid='old-key-000007').id
        # Reading the session's counters scans a few hundred rows of its own.
        assert scanned < 5000, scanned


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_a_key_sent_again_while_its_first_copy_commits_is_stored_once(app, auth):
    """A frame sent again (after a dropped connection) while its first copy's batch is
    still committing: the copy waits for the next batch, whose insert the unique key
    refuses, and gets the first copy's ack rather than a second row."""
    import gevent

    from imchat.service.frame import Frame

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    svc = app.extensions['imchat']
    messages = svc.writer
    frame = Frame('again-key-0001', 10, bob.id, 1, content='once')
    holder = _mysql_admin()  # holds the message stream's row: batch N cannot commit
    try:
        with holder.cursor() as cursor:
            cursor.execute('USE `{}`'.format(app.config['DATABASE_URL'].rsplit('/', 1)[1]))
            cursor.execute('BEGIN')
            cursor.execute("SELECT pos FROM stream WHERE name = 'message' FOR UPDATE")
        first = messages.submit(alice.id, frame)
        taken(messages, 1, 'batch N')
        again = messages.submit(alice.id, frame)
        # Nothing can move while the stream's row is held: once every greenlet here
        # waits, a wrong early answer to either would be there to see.
        gevent.idle()
        assert not first.ready() and not again.ready()
    finally:
        holder.rollback()
        holder.close()
    stored, repeated = first.get(timeout=10), again.get(timeout=10)
    assert repeated.msgid == stored.msgid and repeated.createat == stored.createat
    with db_session:
        assert svc.db.Message.select(lambda m: m.clientid == 'again-key-0001').count() == 1


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_a_batch_of_new_keys_is_one_round_trip(app_config, monkeypatch):
    """A batch of keys never sent before costs one round trip: no lookup (the unique key,
    not a SELECT, catches a key sent again), and its COMMIT goes with its statements."""
    import pymysql

    from imchat.service.frame import Frame

    with _app_of_one_connection(app_config) as svc:
        db = svc.db
        with db_session:
            db.Contact(ownerid=7, dstid=8, cate=1, createat=1)
        # The first message checks the friendship (a SELECT, then remembered).
        assert svc.writer.submit(7, Frame('warm-up-key-1', 10, 8, 1, content='x')).get(
            timeout=10).msgid
        # The writer's own connection (the pool lends it to the writer's kind only).
        with multi_statement_connections(), db_session:
            before = _session_status(db, 'Com_select')
        sent = []
        execute_command = pymysql.connections.Connection._execute_command

        def counted(connection, command, sql):
            sent.append(sql)
            return execute_command(connection, command, sql)
        monkeypatch.setattr(pymysql.connections.Connection, '_execute_command', counted)
        # Submitted without a yield between them: one batch.
        results = [svc.writer.submit(7, Frame('fresh-key-{:04d}'.format(i), 10, 8, 1,
                                                content='x'))
                   for i in range(200)]
        ids = [result.get(timeout=20).msgid for result in results]
        monkeypatch.undo()
        assert len(sent) == 1, [text[:80] for text in sent]
        with multi_statement_connections(), db_session:
            # Reading the counter is a SELECT of its own. The rows are there for this
            # session (on the same connection): the pool would have rolled back an
            # uncommitted batch.
            assert _session_status(db, 'Com_select') == before + 1
            assert db.Message.select().count() == 201
        assert ids == list(range(ids[0], ids[0] + 200))
        again = svc.writer.submit(7, Frame('fresh-key-0042', 10, 8, 1, content='x')).get(
            timeout=10)
        assert again.msgid == ids[42]


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_only_the_message_writer_may_stack_statements_in_a_query(app_config):
    """A batch goes in one multi-statement query; no other query may carry a second
    statement (an injection could not stack one), not even on a connection the writer
    used before."""
    from pony.orm.dbapiprovider import ProgrammingError

    from imchat.service.frame import Frame

    with _app_of_one_connection(app_config) as svc:
        db = svc.db
        with db_session:
            db.Contact(ownerid=7, dstid=8, cate=1, createat=1)
        assert svc.writer.submit(7, Frame('stack-key-01', 10, 8, 1, content='x')).get(
            timeout=10).msgid
        with db_session:
            with pytest.raises(ProgrammingError) as refused:
                db.select('SELECT 1; SELECT 2')
            assert refused.value.original_exc.args[0] == 1064  # a syntax error
        with db_session:  # the connection is fine after it
            assert db.select('SELECT 3') == [3]
        assert svc.writer.submit(7, Frame('stack-key-02', 10, 8, 1, content='y')).get(
            timeout=10).msgid
        with db_session:
            assert db.Message.select().count() == 2


def test_a_batch_the_database_refuses_leaves_no_trace(app):
    """A refused INSERT (here a client id longer than its column) fails the whole batch,
    whose statements travel together on MySQL: the stream gives its ids back, no row
    stays, and the connection serves the next batch."""
    from pony.orm import rollback

    db = app.extensions['imchat'].db
    with db_session:
        before = db.Stream.get(name='message').pos
    good = (7, 10, 8, 1, 'fine', '', '', '', 0, 1, None)
    if db.provider.dialect == 'MySQL':
        bad = (7, 10, 8, 1, 'refused', '', '', '', 0, 1, 'k' * 65)
    else:  # SQLite keeps any length: a NOT NULL column given NULL is refused there
        bad = (7, 10, 8, 1, None, '', '', '', 0, 1, None)
    with pytest.raises(Exception):
        with db_session:
            insert_messages(db, [good, bad, good], True, lambda ids: [
                ('UPDATE stream SET pos = pos WHERE name = ?', ['message'])])
    rollback()
    with db_session:
        assert db.Stream.get(name='message').pos == before
        assert db.Message.select().count() == 0
    with db_session:
        ids = insert_messages(db, [good, good], True)
    assert ids == [before + 1, before + 2]


def test_a_batch_with_no_stream_to_take_ids_from_is_refused_whole(app):
    """The batch's COMMIT travels with its statements on MySQL: with the message stream's
    row gone, the batch must fail before it, leaving no row, rather than commit rows
    under ids nobody took."""
    db = app.extensions['imchat'].db
    with db_session:
        db.execute("DELETE FROM stream WHERE name = 'message'")
    row = (7, 10, 8, 1, 'no ids', '', '', '', 0, 1, None)
    with pytest.raises(LookupError):
        with db_session:
            insert_messages(db, [row, row], True, lambda ids: [], last=True)
    with db_session:
        assert db.Message.select().count() == 0


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_a_batch_sent_to_follow_another_stores_only_if_that_one_committed(app):
    """insert_messages' `after`: the batch stores nothing (StreamMoved) unless the batch
    it follows committed (its anchor row is there) and nothing took ids since."""
    from imchat.model.stream import StreamMoved, take_ids

    db = app.extensions['imchat'].db
    first = [(7, 10, 8, 1, 'first %d' % i, '', '', '', 0, 1, 'first-key-%d' % i)
             for i in range(3)]
    with db_session:
        ids = insert_messages(db, first, True, last=True)
    committed = (ids[-1], ids[-1], 7, 'first-key-2')

    def follow(after, key):
        with db_session:
            return insert_messages(db, [(7, 10, 8, 1, key, '', '', '', 0, 1, key)], True,
                                   last=True, after=after)

    def stored(key):
        with db_session:
            return db.Message.exists(clientid=key)

    # The anchor row is not there (that batch rolled back): nothing stored.
    with pytest.raises(StreamMoved):
        follow((ids[-1], ids[-1], 7, 'first-key-9'), 'follow-key-1')
    assert not stored('follow-key-1')
    # Another took an id since: nothing stored either.
    with db_session:
        taken = take_ids(db, 'message', 1)[0]
    with pytest.raises(StreamMoved):
        follow(committed, 'follow-key-2')
    assert not stored('follow-key-2')
    # As expected: stored, right after.
    assert follow((taken, ids[-1], 7, 'first-key-2'), 'follow-key-3') == [taken + 1]
    assert stored('follow-key-3')


@pytest.mark.parametrize('database_url', ['mysql'], indirect=True)
def test_a_batch_that_fails_after_taking_ids_is_not_overtaken(app, auth):
    """Two batches in the database at once: batch N holds the stream and then fails (one
    of its keys turns out stored: a concurrent transaction committed it), while N+1
    waits for the stream. N+1 must not commit first: it fails too, and each is stored
    again in turn, so one sender's messages keep the order it sent them in."""
    import gevent

    from imchat.service.frame import Frame

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    svc = app.extensions['imchat']
    messages = svc.writer
    # Learn the friendship first: no SELECT on the way below.
    assert messages.submit(alice.id, Frame('warm-up-key-1', 10, bob.id, 1,
                                           content='x')).get(timeout=10).msgid
    other = _mysql_admin()
    try:
        with other.cursor() as cursor:
            cursor.execute('USE `{}`'.format(app.config['DATABASE_URL'].rsplit('/', 1)[1]))
            cursor.execute('BEGIN')
            cursor.execute("INSERT INTO message (id, userid, cmd, dstid, media, content, pic, "
                           "url, memo, amount, createat, clientid) VALUES (1000000, %s, 10, "
                           "%s, 1, 'elsewhere', '', '', '', 0, 1, 'dup-key-0001')",
                           (alice.id, bob.id))
        sent = ['a-key-0001', 'dup-key-0001', 'a-key-0002']
        results = [messages.submit(alice.id, Frame(key, 10, bob.id, 1, content=key))
                   for key in sent]
        taken(messages, 1, 'batch N')  # it holds the stream, its INSERT waits for that row
        later = ['b-key-0001', 'b-key-0002']
        results += [messages.submit(alice.id, Frame(key, 10, bob.id, 1, content=key))
                    for key in later]
        taken(messages, 2, 'batch N+1')  # it waits for the stream
        gevent.idle()
        assert not any(result.ready() for result in results)
        other.commit()
    finally:
        other.close()
    outcomes = [result.get(timeout=10) for result in results]
    assert outcomes[1].msgid == 1000000  # stored before: its ack, no second row
    ids = [outcome.msgid for key, outcome in zip(sent + later, outcomes)
           if key != 'dup-key-0001']
    assert ids == sorted(ids) and len(set(ids)) == 4, ids
    with db_session:
        assert svc.db.Message.select().count() == 6
