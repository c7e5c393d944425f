"""Several nodes, one deployment: real server processes on one database (SQLite and
MariaDB), joined by the bus (the machine's Redis, a Redis of the test's own, and UDP
on 127.0.0.1), with real WebSockets."""
import socket
import time

import pytest

from tests.harness import ServerProcess, TcpRelay, UdpRelay, free_port, wait_for
from tests.harness.redis_server import RedisServer, require_redis
from tests.wsclient import ChatClient

pytestmark = pytest.mark.process

REDIS = 'redis://127.0.0.1:6379/0'
_mobiles = iter(range(13700000000, 13799999999))


@pytest.fixture
def cluster(database_url, tmp_path):
    """cluster(kind, count, relay_to=None, **settings) -> [ServerProcess]; `kind` is redis or udp."""
    started, relays = [], []

    def make(kind, count, udp_relay_from=None, **settings):
        if kind == 'redis':
            require_redis()
        names = ['node{}'.format(i) for i in range(count)]
        if kind == 'udp':
            ports = [free_port(socket.SOCK_DGRAM) for _ in names]
            buses = []
            for i in range(count):
                peers = []
                for j in range(count):
                    if i == j:
                        continue
                    port = ports[j]
                    if udp_relay_from is not None and i == udp_relay_from:
                        relay = UdpRelay(ports[j])
                        relays.append(relay)
                        port = relay.port
                    peers.append('127.0.0.1:{}'.format(port))
                buses.append('udp://127.0.0.1:{}?peers={}'.format(ports[i], ','.join(peers)))
        else:
            buses = [settings.pop('BUS', REDIS)] * count if 'BUSES' not in settings else \
                settings.pop('BUSES')
        nodes = []
        for i, name in enumerate(names):
            node = cluster_node(name, database_url, buses[i], tmp_path, **settings).spawn()
            started.append(node)
            nodes.append(node)
            if i == 0:
                node.wait_healthy()  # the first makes the tables
        for node in nodes:
            node.wait_healthy()
        return nodes

    make.relays = relays
    yield make
    for node in started:
        node.stop()
    for relay in relays:
        relay.close()


def cluster_node(name, database_url, bus, folder, **settings):
    """A node of the deployment; `settings` by their name without IMCHAT_."""
    return ServerProcess(
        folder, database_url, name=name, IMCHAT_BUS=bus, IMCHAT_NODE_ID=name,
        IMCHAT_ACCESS_LOG=0, IMCHAT_WS_RATE=0,
        **{'IMCHAT_' + k: v for k, v in settings.items()})


def people(node, count):
    return [node.api.register(str(next(_mobiles))) for _ in range(count)]


def befriend(node, a, b):
    status, reply = node.api.post('/contact/addfriend', {'dstid': b['id']}, a)
    assert status == 200, reply


def connect(node, account, **params):
    return ChatClient(node.ws_url(account, **params), timeout=10)


def texts(client, count, timeout=10, within=None):
    """The next `count` messages (acks skipped), each within `timeout` seconds, or all
    of them within `within` seconds of the call."""
    got = []
    deadline = None if within is None else time.monotonic() + within
    while len(got) < count:
        if deadline is not None:
            timeout = max(0.01, deadline - time.monotonic())
        message = client.recv(timeout)
        if message.get('cmd') != 1:
            got.append(message)
    return got


def stored(node, reader, sender, content):
    """Wait until `content` from `sender` is in the database (read through `node`)."""
    def found():
        status, reply = node.api.post('/chat/history', {'cmd': 10, 'dstid': sender['id']}, reader)
        return any(m['content'] == content for m in reply['rows'] if 'content' in m)
    wait_for(found, what='{!r} stored'.format(content))


def quiet_for(client, seconds=0.5):
    client.expect_nothing(seconds)


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_a_message_reaches_every_connection_on_every_node_once(cluster, kind):
    nodes = cluster(kind, 3)
    alice, bob, carol = people(nodes[0], 3)
    befriend(nodes[0], alice, bob)
    status, reply = nodes[1].api.post('/contact/createcommunity', {'name': 'g'}, alice)
    community = reply['data']['id']
    for member in (bob, carol):
        assert nodes[2].api.post('/contact/joincommunity', {'dstid': community}, member)[0] == 200
    a0 = connect(nodes[0], alice)
    a2 = connect(nodes[2], alice)           # alice's second device, elsewhere
    b1 = connect(nodes[1], bob)
    b2 = connect(nodes[2], bob)
    c1 = connect(nodes[1], carol)
    try:
        direct = a0.send_texts(bob['id'], ['hello bob {}'.format(n) for n in range(5)])
        for client in (b1, b2, a2):
            got = texts(client, 5)
            assert [m['msgid'] for m in got] == direct
            assert got[0]['content'] == 'hello bob 0' and got[0]['userid'] == alice['id']
        group = b1.send_texts(community, ['to all {}'.format(n) for n in range(3)], cmd=11)
        for client in (a0, a2, b2, c1):
            assert [m['msgid'] for m in texts(client, 3)] == group
        for client in (a0, a2, b1, b2, c1):
            quiet_for(client)  # exactly once
    finally:
        for client in (a0, a2, b1, b2, c1):
            client.close()


def test_a_node_without_recipients_receives_nothing_from_the_redis_bus(cluster):
    nodes = cluster('redis', 3)
    alice, bob, carol = people(nodes[0], 3)
    befriend(nodes[0], alice, bob)
    a0, b1, c2 = connect(nodes[0], alice), connect(nodes[1], bob), connect(nodes[2], carol)
    try:
        sent = a0.send_texts(bob['id'], ['x{}'.format(n) for n in range(10)])
        assert [m['msgid'] for m in texts(b1, 10)] == sent
        # A message can reach bob first by the stream's poll of the database when the bus
        # is slow (a busy machine); its bus copy still arrives, and is counted, after.
        wait_for(lambda: nodes[1].metric('imchat_bus_messages_received_total') >= 10,
                 what='node 1 to hear the 10 messages on the bus')
        assert nodes[1].metric('imchat_bus_messages_received_total') == 10
        assert nodes[2].metric('imchat_bus_messages_received_total') == 0
        assert nodes[0].metric('imchat_bus_messages_received_total') == 0
    finally:
        for client in (a0, b1, c2):
            client.close()


def test_a_writer_stalled_between_commit_and_publish_delays_later_ids_never_reorders(
        cluster, database_url):
    """node0 reaches Redis through a relay the test stalls: its message commits (lower
    id) but is not published; node1's later message (higher id) must wait for it."""
    require_redis()
    relay = TcpRelay(6379)
    try:
        prefix = 'stall{}'.format(free_port())
        nodes = cluster('redis', 3, BUSES=[
            'redis://127.0.0.1:{}/0?prefix={}'.format(relay.port, prefix),
            REDIS + '?prefix=' + prefix, REDIS + '?prefix=' + prefix])
        alice, bob, rose = people(nodes[0], 3)
        befriend(nodes[0], alice, rose)
        befriend(nodes[0], bob, rose)
        a0, b1, r2 = connect(nodes[0], alice), connect(nodes[1], bob), connect(nodes[2], rose)
        try:
            for round_ in range(3):
                relay.stall_upstream()
                a0.text(rose['id'], 'first {}'.format(round_))
                # Stored (any node's history shows it); its publish is stuck in the relay.
                stored(nodes[1], rose, alice, 'first {}'.format(round_))
                second = b1.send_texts(rose['id'], ['second {}'.format(round_)])[0]
                # The stall itself is under test: shorter, then longer, than the gap wait
                # (0.3 s) after which node2 reads the missing id from the database.
                time.sleep(0.1 if round_ == 0 else 0.6)
                relay.restore()
                first = a0.recv_ack(10)['msgid']
                assert first < second
                got = texts(r2, 2)
                assert [m['msgid'] for m in got] == [first, second], got
                quiet_for(r2)
        finally:
            for client in (a0, b1, r2):
                client.close()
    finally:
        relay.close()


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_a_node_that_dies_after_commit_before_publish_loses_nothing(cluster, kind):
    """node0 stores a message and never publishes it (its bus traffic is held, then the
    node is killed): the others find the gap in the ids and fill it from the database,
    in order with what came after."""
    relay = None
    if kind == 'redis':
        require_redis()
        relay = TcpRelay(6379)
        prefix = 'dies{}'.format(free_port())
        nodes = cluster('redis', 3, BUSES=[
            'redis://127.0.0.1:{}/0?prefix={}'.format(relay.port, prefix),
            REDIS + '?prefix=' + prefix, REDIS + '?prefix=' + prefix])
    else:
        nodes = cluster('udp', 3, udp_relay_from=0)
    try:
        alice, bob, rose = people(nodes[0], 3)
        befriend(nodes[0], alice, rose)
        befriend(nodes[0], bob, rose)
        a0, b1, r2 = connect(nodes[0], alice), connect(nodes[1], bob), connect(nodes[2], rose)
        try:
            if relay is not None:
                relay.stall_upstream()
            else:
                for udp in cluster.relays:
                    udp.drop = True
            a0.text(rose['id'], 'lost in flight')
            if relay is None:
                first = a0.recv_ack(10)['msgid']  # UDP: sent (and lost) before the ack
            stored(nodes[1], rose, alice, 'lost in flight')
            nodes[0].kill()
            second = b1.send_texts(rose['id'], ['after'])[0]
            got = texts(r2, 2, timeout=15)
            assert [m['content'] for m in got] == ['lost in flight', 'after']
            assert got[0]['msgid'] < got[1]['msgid'] == second
            if relay is None:
                assert got[0]['msgid'] == first
            quiet_for(r2)
        finally:
            for client in (a0, b1, r2):
                client.close()
    finally:
        if relay is not None:
            relay.close()


def test_a_lost_datagram_only_delays_a_message(cluster):
    nodes = cluster('udp', 2, udp_relay_from=0)
    alice, rose = people(nodes[0], 2)
    befriend(nodes[0], alice, rose)
    a0, r1 = connect(nodes[0], alice), connect(nodes[1], rose)
    try:
        for relay in cluster.relays:
            relay.drop = True
        received = nodes[1].metric('imchat_bus_messages_received_total')
        sent = a0.send_texts(rose['id'], ['dropped {}'.format(n) for n in range(3)])
        # All three soon (a gap is found within POLL and filled after GAP_WAIT, well
        # under 5 s), and none of them off the bus: they came through the gap the lost
        # datagrams left, read from the database.
        assert [m['msgid'] for m in texts(r1, 3, within=5)] == sent
        assert sum(relay.dropped for relay in cluster.relays) >= 1
        assert nodes[1].metric('imchat_bus_messages_received_total') == received
    finally:
        a0.close()
        r1.close()


def test_a_big_message_crosses_udp_as_a_reference(cluster):
    nodes = cluster('udp', 2)
    alice, rose = people(nodes[0], 2)
    befriend(nodes[0], alice, rose)
    a0, r1 = connect(nodes[0], alice), connect(nodes[1], rose)
    try:
        big = '长' * 3000  # 9000 bytes: more than a datagram holds
        sent = a0.send_texts(rose['id'], [big, 'small'])
        got = texts(r1, 2)
        assert [m['msgid'] for m in got] == sent and got[0]['content'] == big
    finally:
        a0.close()
        r1.close()


def test_the_bus_going_away_loses_nothing_and_comes_back(cluster, tmp_path):
    redis = RedisServer(str(tmp_path))
    try:
        nodes = cluster('redis', 2, BUS=redis.url)
        alice, bob, rose = people(nodes[0], 3)
        befriend(nodes[0], alice, rose)
        befriend(nodes[0], alice, bob)
        a0, b0, r1 = connect(nodes[0], alice), connect(nodes[0], bob), connect(nodes[1], rose)
        try:
            assert nodes[0].health()['bus'] == 'up'
            redis.stop()
            wait_for(lambda: nodes[0].health()['bus'] == 'down', what='bus reported down')
            # Local delivery goes on; the other node catches up from the database.
            local = a0.send_texts(bob['id'], ['local while down'])
            assert [m['msgid'] for m in texts(b0, 1)] == local
            remote = a0.send_texts(rose['id'], ['remote while down'])
            assert [m['msgid'] for m in texts(r1, 1, timeout=15)] == remote
            redis.start()
            for node in nodes:
                wait_for(lambda: node.health()['bus'] == 'up', what='bus back up')
            again = a0.send_texts(rose['id'], ['after it came back'])
            assert [m['msgid'] for m in texts(r1, 1)] == again
            quiet_for(r1)
        finally:
            for client in (a0, b0, r1):
                client.close()
    finally:
        redis.stop()


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_presence_logout_and_join_hold_across_nodes(cluster, kind):
    nodes = cluster(kind, 3, PRESENCE_TTL=2)
    alice, bob = people(nodes[0], 2)
    befriend(nodes[0], alice, bob)  # /user/find shows `online` to friends only
    assert nodes[0].api.post('/user/find', {'id': bob['id']}, alice)[1]['data']['online'] == 0
    b1 = connect(nodes[1], bob)
    try:
        wait_for(lambda: nodes[0].api.post('/user/find', {'id': bob['id']}, alice)[1]['data'][
            'online'] == 1, what='bob online')
        # A join on node2 reaches bob's open socket on node1.
        status, reply = nodes[0].api.post('/contact/createcommunity', {'name': 'g'}, alice)
        community = reply['data']['id']
        assert nodes[2].api.post('/contact/joincommunity', {'dstid': community}, bob)[0] == 200
        a0 = connect(nodes[0], alice)
        sent = a0.send_texts(community, ['welcome'], cmd=11)
        assert [m['msgid'] for m in texts(b1, 1)] == sent
        a0.close()
        # Logging out on node2 closes that login's socket on node1.
        assert nodes[2].api.post('/user/logout', {}, bob)[0] == 200
        code, _ = b1.close_code(10)
        assert code == 4401
    finally:
        b1.close()
    # A node that dies takes its users' presence with it (after the TTL).
    carol = people(nodes[0], 1)[0]
    befriend(nodes[0], alice, carol)
    c1 = connect(nodes[1], carol)
    try:
        wait_for(lambda: nodes[2].api.post('/user/find', {'id': carol['id']}, alice)[1]['data'][
            'online'] == 1, what='carol online')
        nodes[1].kill()
        wait_for(lambda: nodes[2].api.post('/user/find', {'id': carol['id']}, alice)[1]['data'][
            'online'] == 0, timeout=15, what='carol offline after her node died')
    finally:
        c1.close()


def test_healthz_and_metrics_name_the_bus_and_node(cluster):
    nodes = cluster('udp', 2)
    wait_for(lambda: all(node.health()['bus'] == 'up' for node in nodes), what='peers heard')
    assert nodes[1].metric('imchat_connections_open') == 0
    nodes[1].kill()
    wait_for(lambda: nodes[0].health()['bus'] == 'down', what='a silent peer reported')


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_a_join_while_the_group_is_busy_gets_exactly_the_messages_after_it(cluster, kind):
    """Bob, connected on node1, joins on node0 while alice floods the group from node2:
    his socket gets every message after his join, in order, and none before it (the
    messages his membership lets him read in the history)."""
    import gevent
    from gevent.event import Event

    nodes = cluster(kind, 3)
    alice, bob = people(nodes[0], 2)
    status, reply = nodes[2].api.post('/contact/createcommunity', {'name': 'busy'}, alice)
    community = reply['data']['id']
    a2, b1 = connect(nodes[2], alice), connect(nodes[1], bob)
    try:
        sent = []
        joined = Event()

        def flood():
            # Until the join is answered, then ten more: however long the join takes
            # against the flood, it lands in the middle of it (a fixed count of 60 could
            # all be stored before a slow join).
            after = 0
            while after < 10:
                sent.extend(a2.send_texts(community, ['m{}'.format(len(sent))], cmd=11))
                if joined.is_set():
                    after += 1
        flooding = gevent.spawn(flood)
        wait_for(lambda: len(sent) >= 10, what='the flood under way')
        assert nodes[0].api.post('/contact/joincommunity', {'dstid': community}, bob)[0] == 200
        joined.set()
        flooding.get(timeout=60)
        status, reply = nodes[1].api.post('/chat/history', {'cmd': 11, 'dstid': community,
                                                         'limit': 100}, bob)
        visible = [m['msgid'] for m in reply['rows']]
        assert visible and visible[-1] == sent[-1]
        assert 0 < len(visible) < len(sent)  # the join landed mid-flood
        assert [m['msgid'] for m in texts(b1, len(visible), timeout=15)] == visible
        quiet_for(b1)
    finally:
        a2.close()
        b1.close()


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_failed_logins_are_counted_once_for_the_deployment(cluster, kind):
    nodes = cluster(kind, 3, LOGIN_ATTEMPTS=3, LOGIN_WINDOW=300)
    mobile = str(next(_mobiles))
    nodes[0].api.register(mobile)
    wrong = {'mobile': mobile, 'passwd': 'wrong-pass'}
    for node in nodes:  # one failure on each node: three for the deployment
        assert node.api.post('/user/login', wrong)[0] == 401
    for node in nodes:
        status, reply = node.api.post('/user/login', {'mobile': mobile, 'passwd': 'secret-pass'})
        assert status == 429, reply


class StreamLock:
    """The test's own transaction holding the message stream's lock (the row on MySQL,
    the write lock on SQLite), as a slow writer on another node would."""

    def __init__(self, database_url):
        from imchat.model.engine import parse_database_url

        kind, params = parse_database_url(database_url)
        if kind == 'sqlite':
            import sqlite3
            self.con = sqlite3.connect(params['filename'], timeout=15, isolation_level=None)
            self.con.execute('BEGIN IMMEDIATE')
            self.con.execute("UPDATE stream SET pos = pos WHERE name = 'message'")
        else:
            import pymysql
            self.con = pymysql.connect(charset='utf8mb4', ssl_disabled=True, **params)
            self.con.begin()
            self.con.cursor().execute("UPDATE stream SET pos = pos WHERE name = 'message'")

    def release(self):
        self.con.rollback()
        self.con.close()


def test_writers_on_several_nodes_wait_for_the_stream_and_commit_in_id_order(
        cluster, database_url):
    nodes = cluster('redis', 3, DB_TIMEOUT=30)
    alice, bob, rose = people(nodes[0], 3)
    befriend(nodes[0], alice, rose)
    befriend(nodes[0], bob, rose)
    a0, b1, r2 = connect(nodes[0], alice), connect(nodes[1], bob), connect(nodes[2], rose)
    try:
        lock = StreamLock(database_url)
        try:
            a0.text(rose['id'], 'one')
            b1.text(rose['id'], 'two')
            quiet_for(r2, 1.0)  # neither can take an id, so neither commits
            a0.expect_nothing(0.1)
        finally:
            lock.release()
        acked = sorted([a0.recv_ack(20)['msgid'], b1.recv_ack(20)['msgid']])
        assert acked[1] == acked[0] + 1  # dense
        assert [m['msgid'] for m in texts(r2, 2)] == acked
        quiet_for(r2)
    finally:
        for client in (a0, b1, r2):
            client.close()


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_conversation_events_cross_nodes(cluster, kind):
    """Typing and presence (Hub.push, never stored) and recalls (stored events) reach
    connections on other nodes; a kick on one node stops the member sending on another."""
    nodes = cluster(kind, 3, PRESENCE_GRACE=0)
    alice, bob = people(nodes[0], 2)
    befriend(nodes[0], alice, bob)
    b1 = ChatClient(nodes[1].ws_url(bob), timeout=10, ignore=())
    try:
        wait_for(lambda: nodes[0].api.post('/user/find', {'id': bob['id']}, alice)[1]['data'][
            'online'] == 1, what='bob online')
        a2 = connect(nodes[2], alice)
        assert b1.recv(10) == {'cmd': 15, 'userid': alice['id'], 'online': 1}
        a2.send(cmd=13, dstid=bob['id'])
        assert a2.recv_ack(10)['code'] == 0
        assert b1.recv(10) == {'cmd': 13, 'userid': alice['id'], 'dstid': bob['id']}
        sent = a2.send_texts(bob['id'], ['oops'])[0]
        assert b1.recv(10)['msgid'] == sent
        a2.send(cmd=14, msgid=sent)
        ack = a2.recv_ack(10)
        assert ack['code'] == 0, ack
        event = b1.recv(10)
        assert event['cmd'] == 14 and event['recalledmsgid'] == sent
        assert event['msgid'] == ack['msgid']
        a2.close()
        assert b1.recv(10) == {'cmd': 15, 'userid': alice['id'], 'online': 0}
        # A kick on node0 stops bob sending to the group from node1 at once.
        status, reply = nodes[0].api.post('/contact/createcommunity', {'name': 'g'}, alice)
        community = reply['data']['id']
        assert nodes[0].api.post('/contact/joincommunity', {'dstid': community}, bob)[0] == 200
        b1.send(cmd=11, dstid=community, media=1, content='member', id=1)
        assert b1.recv_ack(10)['code'] == 0  # allowed, and remembered on node1
        assert nodes[0].api.post('/contact/kick', {'dstid': community, 'memberid': bob['id']},
                             alice)[0] == 200

        def refused():
            b1.send(cmd=11, dstid=community, media=1, content='kicked?')
            while True:
                frame = b1.recv(10)
                if frame.get('cmd') == 1:
                    return frame['code'] == -1
        wait_for(refused, what='the kicked member refused on another node')
    finally:
        b1.close()


def test_a_bad_bus_setting_stops_the_start_saying_why(database_url, tmp_path):
    node = cluster_node('bad', database_url, 'kafka://127.0.0.1:9092', tmp_path).spawn()
    try:
        assert node.process.wait(60) == 1
        log = node.log()
        assert 'CRITICAL cannot start' in log and 'unsupported bus' in log, log
    finally:
        node.stop()
