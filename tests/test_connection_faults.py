"""Faults around closing connections: one user's connections closing at once, and a
client port reused while the server still closes the last connection from it."""
import logging
import socket
import struct

import gevent
import pytest
from pony.orm import db_session

from tests.harness import wait_for
from tests.test_chat import connect, pair  # noqa: F401  (fixtures)
from tests.wsclient import raw_handshake


def server_errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def resume_point(app, user_id):
    with db_session:
        return app.extensions['imchat'].db.User[user_id].synced_msgid


def test_simultaneous_closes_keep_the_highest_resume_point(app, live_server, pair, connect,  # noqa: F811
                                                           caplog):
    alice, bob = pair
    sender = connect(alice)
    receivers = [connect(bob) for _ in range(8)]
    msgids = sender.send_texts(bob.id, ['m{}'.format(n) for n in range(5)])
    for receiver in receivers:
        assert [m['msgid'] for m in receiver.recv_messages(5)] == msgids
    # Every connection of bob drops at the same moment (a phone losing its network).
    for receiver in receivers:
        receiver.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        receiver.ws.sock.close()
    assert wait_for(lambda: not live_server.hub.is_online(bob.id), timeout=15)
    assert wait_for(lambda: resume_point(app, bob.id) == msgids[-1], timeout=15)
    assert not server_errors(caplog)


def test_concurrent_resume_point_saves_do_not_race(app, pair):
    """What the closes above do, many at once and with different points: each save is
    one conditional UPDATE, so none fails and the highest wins."""
    _, bob = pair
    messages = app.extensions['imchat'].reader
    # Warm the pool, so the saves below start their transactions together.
    gevent.joinall([gevent.spawn(messages.save_resume_point, bob.id, 1) for _ in range(8)],
                   raise_error=True)
    saves = [gevent.spawn(messages.save_resume_point, bob.id, 10 + n) for n in range(8)]
    gevent.joinall(saves, timeout=30)
    assert all(save.successful() for save in saves), [save.exception for save in saves]
    assert resume_point(app, bob.id) == 17


def test_a_resume_point_never_goes_back(app, pair):
    _, bob = pair
    messages = app.extensions['imchat'].reader
    messages.save_resume_point(bob.id, 40)
    messages.save_resume_point(bob.id, 30)
    assert resume_point(app, bob.id) == 40
    messages.save_resume_point(bob.id, 41)
    assert resume_point(app, bob.id) == 41


@pytest.fixture
def app_config(app_config):
    # The churn is the test, not the door: the handshake rate limit (issue 25) would
    # refuse it, and so would the cap on handshakes in progress. The churn runs in the
    # server's own event loop, which is never idle while it goes on, so each handshake
    # waits its IDLE_WAIT_MAX (service.limits.after_connected_work) while the next ones
    # arrive: 150 in a few hundred milliseconds are more than 64 at once.
    app_config['WS_HANDSHAKE_RATE'] = 0
    app_config['WS_HANDSHAKES'] = 0
    return app_config


def test_a_reused_client_port_under_churn(app, live_server, pair, connect, caplog, capfd):  # noqa: F811
    alice, bob = pair
    sender = connect(alice)
    sender.send_texts(bob.id, ['one to catch up on'])
    # Counted from here: bob's connections the hub took, and those it is done with.
    hub, taken, done = live_server.hub, [0], [0]
    register, unregister = hub.register, hub.unregister

    def counted_register(client, community_ids):
        took = register(client, community_ids)
        taken[0] += bool(took)
        return took

    def counted_unregister(client):
        try:
            unregister(client)
        finally:
            done[0] += 1
    hub.register, hub.unregister = counted_register, counted_unregister
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    for _ in range(150):
        # The same client port every time; an RST leaves no TIME_WAIT to stop its reuse.
        # Each connection catches up on a message, so closing it saves a resume point.
        sock = raw_handshake(live_server.port, bob, since=0, local_port=port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
    assert wait_for(lambda: not live_server.hub.is_online(bob.id), timeout=15)
    # Every request is over (each handshake refused, closed or handed to the readers),
    # and every connection the hub took it has let go, its cleaning up run to the end.
    wait_for(lambda: live_server.handlers() == 0 and taken[0] == done[0],
             what="bob's connections over")
    assert 'KeyError' not in capfd.readouterr().err
    assert not server_errors(caplog)
    # Nothing of the closed connections stays registered anywhere in the server.
    assert not getattr(live_server.server, 'clients', None)
    # and the user can still chat
    receiver = connect(bob, since=0)
    assert receiver.recv()['content'] == 'one to catch up on'
