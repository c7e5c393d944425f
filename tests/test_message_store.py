"""Storing messages in batches: the ids handed back are the ids the rows got."""
import pytest
from pony.orm import db_session

from imchat.model import insert_messages
from imchat.model.engine import multirow_insert_ids_are_consecutive


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
    from imchat.service.message import Refused, Stored

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    messages = app.extensions['imchat'].messages
    good = [Frame(i, 10, bob.id, 1, content='ok %d' % i) for i in range(3)]
    bad = Frame(99, 10, bob.id, 1, content='\ud800')  # a lone surrogate: no driver encodes it
    results = [messages.submit(alice.id, frame) for frame in good[:2] + [bad] + good[2:]]
    outcomes = [result.get(timeout=10) for result in results]
    assert [type(o) for o in outcomes] == [Stored, Stored, Refused, Stored]
    assert 'could not be stored' in outcomes[2].msg


def test_a_long_client_id_is_stored_once_however_often_it_is_sent(app, auth):
    from imchat.service.frame import Frame
    from imchat.service.message import Stored

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    messages = app.extensions['imchat'].messages
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
    history = messages.history(bob.id, 10, alice.id)
    assert [m['content'] for m in history] == ['once', 'original client', 'original client']
