"""What an idle WebSocket costs the production server, and that a connection read in the
background (no greenlet while it waits) still does everything a connection does."""
from tests.test_chat import connect, pair, wait_for  # noqa: F401  (fixtures)
from tests.test_connection_faults import resume_point


def test_close_all_returns_once_every_resume_point_is_saved(app, pair, connect, live_server):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    msgids = a.send_texts(bob.id, ['one', 'two'])
    assert [m['msgid'] for m in b.recv_messages(2)] == msgids
    live_server.hub.close_all(timeout=1)
    assert not live_server.hub.users
    assert resume_point(app, bob.id) == msgids[-1]
