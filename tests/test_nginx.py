"""deploy/nginx-imchat.conf in front of real imchat nodes: real nginx (Debian's) in a
temp prefix on a free 127.0.0.1 port, never the system's. Through it: one user's
connections land on one node, users on different nodes chat over the bus, and when a
node dies (SIGKILL) its users reconnect through nginx to another node and catch up with
nothing lost and nothing doubled."""
import os
import re
import sys
import time

import pytest
import websocket

from tests.harness import ROOT, Api, ServerProcess, http, unique_mobiles, wait_for
from tests.harness.nginx import Nginx, require_nginx
from tests.harness.redis_server import redis_bus_url
from tests.wsclient import ChatClient, ConnectionClosed

pytestmark = [pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='real nginx and server processes: Linux'),
              pytest.mark.process]

CONNECTIONS_OPEN = re.compile(r'^imchat_connections_open(?:\{[^}]*\})? (\S+)$', re.M)


def connections_open(node):
    """imchat_connections_open of one node, asked directly (not through nginx)."""
    status, text = http(node.url + '/metrics')
    assert status == 200, text
    return sum(int(float(value)) for value in CONNECTIONS_OPEN.findall(text))


def connect_and_locate(nginx, nodes, user, **params):
    """Open `user`'s WebSocket through nginx; return (client, the node that holds it),
    found by the node whose open-connection count rose."""
    before = {node: connections_open(node) for node in nodes if node.alive()}
    client = ChatClient(user.chat_url(nginx.ws, **params), timeout=15)

    def risen():
        grown = [node for node in before if connections_open(node) > before[node]]
        return grown[0] if len(grown) == 1 else None
    return client, wait_for(risen, 30, 'one node counting the new connection')


def receive_exactly(client, count, quiet=1.5, timeout=30):
    """The next `count` message frames (acks skipped), then nothing more for `quiet`
    seconds: a lost one times out, a doubled one shows up."""
    frames = []
    while len(frames) < count:
        frame = client.recv(timeout=timeout)
        if frame.get('cmd') != 1:
            frames.append(frame)
    client.expect_nothing(quiet)
    return frames


def drain_until_closed(client, seconds=30):
    """Read what a client still gets until its connection ends; return those frames."""
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frames.append(client.recv(timeout=seconds))
        except (ConnectionClosed, websocket.WebSocketConnectionClosedException,
                ConnectionError):
            return frames
    raise AssertionError('the connection stayed open')


@pytest.fixture
def nginx_binary():
    return require_nginx()


@pytest.fixture
def start_nodes(tmp_path, database_url, nginx_binary):
    started = []

    def start(count, **settings):
        nodes = []
        for index in range(count):
            # Through nginx every test user comes from 127.0.0.1, and so do the tests'
            # direct polls of each node's /metrics (20 a second while a test waits for
            # a count): no per-address registration, login or connection-rate limit
            # (IMCHAT_CONNECT_RATE's 50 a second refused a poll with 429 in one run).
            node = ServerProcess(tmp_path / 'node{}'.format(index), database_url,
                                 IMCHAT_DB_POOL_SIZE=5, IMCHAT_PROXY_COUNT=1,
                                 IMCHAT_REGISTER_RATE=0, IMCHAT_LOGIN_RATE=0,
                                 IMCHAT_CONNECT_RATE=0,
                                 **settings).spawn()
            started.append(node)
            nodes.append(node)
            if index == 0:
                # The first node makes the tables of the fresh database; the others start
                # on a ready schema.
                node.wait_healthy()
        for node in nodes:
            node.wait_healthy()
        return nodes
    yield start
    for node in started:
        if node.alive():
            node.stop()


@pytest.fixture
def start_nginx(tmp_path):
    started = []

    def start(nodes):
        nginx = Nginx(tmp_path / 'nginx', ['127.0.0.1:{}'.format(n.port) for n in nodes])
        started.append(nginx)
        return nginx.wait_ready()
    yield start
    for nginx in started:
        nginx.stop()


def test_one_node_behind_nginx_chats_and_logs_chat_without_its_token(start_nodes,
                                                                      start_nginx):
    """The shipped site works as is around one node: the API and the WebSocket through
    nginx, the client's address passed on, and /chat logged without its query string."""
    node, = start_nodes(1)
    nginx = start_nginx([node])
    api = Api(nginx.url)
    alice, bob = [api.register(m) for m in unique_mobiles(2)]
    api.befriend(alice, bob)
    a = ChatClient(alice.chat_url(nginx.ws), timeout=15)
    b = ChatClient(bob.chat_url(nginx.ws), timeout=15)
    try:
        msgid, = a.send_texts(bob.id, ['through nginx'])
        got = b.recv(timeout=15)
        assert (got['msgid'], got['content'], got['userid']) == (msgid, 'through nginx',
                                                                 alice.id)
    finally:
        a.close()
        b.close()
    log = wait_for(lambda: nginx.access_logs().count('"GET /chat HTTP/1.1" 101') >= 2
                   and nginx.access_logs(), 15, 'the /chat lines', interval=0.1)
    assert 'upstream=127.0.0.1:{}'.format(node.port) in log
    assert 'token' not in log and alice.token not in log and bob.token not in log
    # The static files come from the release folder through nginx itself.
    status, text = http(nginx.url + '/asset/css/app.css')
    with open(os.path.join(ROOT, 'asset', 'css', 'app.css'), encoding='utf-8') as f:
        assert (status, text) == (200, f.read())
    assert '/asset/' not in node.log()


def test_a_dead_node_s_users_come_back_through_nginx_and_catch_up(start_nodes, start_nginx):
    """Three nodes on one database and one Redis bus behind nginx. Each user's
    connections land on one node; users on different nodes chat; a node is killed (-9);
    its users reconnect through nginx to a live node with `since` and get exactly what
    was sent to them meanwhile, in order, once."""
    nodes = start_nodes(3, IMCHAT_BUS=redis_bus_url())
    nginx = start_nginx(nodes)
    api = Api(nginx.url)
    hub = api.register(unique_mobiles(1)[0])
    group = api.create_community(hub, 'scale-out')

    # Users until at least two nodes hold some (the hash spreads them).
    users, clients, home = [], {}, {}
    mobiles = iter(unique_mobiles(40))
    try:
        while len(users) < 6 or len(set(home.values())) < 2:
            assert len(users) < 40, 'nginx put every user on one node'
            user = api.register(next(mobiles))
            api.befriend(user, hub)
            api.join(user, group)
            users.append(user)
            clients[user.id], home[user.id] = connect_and_locate(nginx, nodes, user)

        # Reconnects of one user land on the node it is on (a second device too).
        for user in users[:3]:
            again, node = connect_and_locate(nginx, nodes, user)
            assert node is home[user.id]
            again.close()
            wait_for(lambda: sum(map(connections_open, nodes)) == len(users), 30,
                     'the extra connection closed')

        # The hub user talks to everyone from one node; everyone hears it, whatever node.
        hub_client, hub_node = connect_and_locate(nginx, nodes, hub)
        highest = {user.id: 0 for user in users}
        for user in users:
            msgid, = hub_client.send_texts(user.id, ['hello {}'.format(user.id)])
            got = clients[user.id].recv(timeout=15)
            assert (got['msgid'], got['userid']) == (msgid, hub.id)
            highest[user.id] = msgid
        msgid, = hub_client.send_texts(group, ['to all'], cmd=11)
        for user in users:
            got = clients[user.id].recv(timeout=15)
            assert (got['msgid'], got['dstid'], got['cmd']) == (msgid, group, 11)
            highest[user.id] = msgid

        # Kill a node that holds users but not the hub user's connection.
        victims_node = next(node for node in nodes if node is not hub_node
                            and node in home.values())
        victims = [user for user in users if home[user.id] is victims_node]
        victims_node.kill()
        for user in victims:
            leftover = drain_until_closed(clients[user.id])
            assert leftover == [], 'nothing was sent to them since'

        # Meanwhile, sent to them: 1:1 and to the group, stored and acknowledged.
        missed = {user.id: [] for user in victims}
        for round_ in range(3):
            for user in victims:
                missed[user.id] += hub_client.send_texts(user.id, ['missed {} {}'.format(
                    round_, user.id)])
            msgid, = hub_client.send_texts(group, ['group while down {}'.format(round_)],
                                           cmd=11)
            for user in victims:
                missed[user.id].append(msgid)
        # The others, still connected, hear the group live.
        survivors = [user for user in users if user not in victims]
        for user in survivors:
            got = [f['msgid'] for f in receive_exactly(clients[user.id], 3)]
            assert got == sorted(set(got))

        # Back through nginx, with since: on a live node, exactly what they missed.
        for user in victims:
            clients[user.id], node = connect_and_locate(
                nginx, [n for n in nodes if n.alive()], user, since=highest[user.id])
            assert node is not victims_node and node.alive()
            got = receive_exactly(clients[user.id], len(missed[user.id]))
            assert [f['msgid'] for f in got] == sorted(missed[user.id])

        # And they keep chatting live from their new node, in both directions.
        for user in victims:
            msgid, = clients[user.id].send_texts(hub.id, ['back from {}'.format(user.id)])
            got = hub_client.recv(timeout=15)
            assert (got['msgid'], got['userid']) == (msgid, user.id)
            msgid, = hub_client.send_texts(user.id, ['welcome back'])
            assert clients[user.id].recv(timeout=15)['msgid'] == msgid
        hub_client.close()
    finally:
        for client in clients.values():
            client.close()
    log = nginx.access_logs()
    assert log.count('"GET /chat HTTP/1.1" 101') >= len(users) and 'token' not in log
