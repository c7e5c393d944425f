"""The bus hardened (issue 25): nobody but the deployment's nodes speaks on it (forged
datagrams, unsigned, from a stranger's address, replayed, or signed but naming ids the
stream never handed out, are dropped and counted, and delivery goes on), deployments
on one Redis never hear each other, presence refreshes never conflict, and an outage
is two lines in the log. Real server processes, real datagrams, a real Redis."""
import hashlib
import hmac
import json
import socket
import time

import pytest

from tests.harness import free_port, wait_for
from tests.harness.redis_server import RedisServer, require_redis
from tests.test_bus import (BUS_SECRET, REDIS, befriend, cluster, cluster_node,  # noqa: F401
                            connect, people, texts)

pytestmark = pytest.mark.process


def datagram(packet, secret=None):
    body = json.dumps(packet, separators=(',', ':')).encode()
    return (hmac.new(secret, body, hashlib.sha256).digest() if secret else b'') + body


def sequence():
    return int(time.time() * 1e6)


def bus_port(node):
    return int(node.env['IMCHAT_BUS'].split(':')[2].split('?')[0])


def send_from(address, port, data):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        sock.sendto(data, ('127.0.0.1', port))


def dropped(node, reason):
    try:
        return node.metric('imchat_bus_dropped_total', reason=reason)
    except AssertionError:
        return 0  # a labelled series appears once counted


def forged_events(alice, rose, community):
    """What an attacker would say as node0: a push to rose as if from alice, a
    'stored' message above the stream, alice's leave, a range to 2**62."""
    frame = json.dumps({'cmd': 10, 'msgid': 10 ** 9, 'userid': alice['id'],
                        'dstid': rose['id'], 'media': 1, 'content': 'forged'})
    return [
        {'t': 'push', 'u': [rose['id']], 'f': frame, 'n': 'node0'},
        {'t': 'm', 'n': 'node0', 'i': 10 ** 6, 'w': dict(json.loads(frame), msgid=10 ** 6)},
        {'t': 'relay', 'k': 'leave', 'a': [rose['id'], community], 'n': 'node0'},
    ]


def test_forged_datagrams_are_dropped_counted_and_delivery_goes_on(cluster):
    nodes = cluster('udp', 2)
    alice, rose = people(nodes[0], 2)
    befriend(nodes[0], alice, rose)
    status, reply = nodes[0].api.post('/contact/createcommunity', {'name': 'g'}, alice)
    community = reply['data']['id']
    assert nodes[0].api.post('/contact/joincommunity', {'dstid': community}, rose)[0] == 200
    a0, r1 = connect(nodes[0], alice), connect(nodes[1], rose)
    try:
        before = a0.send_texts(rose['id'], ['before'])
        assert [m['msgid'] for m in texts(r1, 1)] == before
        port = bus_port(nodes[1])
        events = forged_events(alice, rose, community)
        # Unsigned, as the review's forger sent them (the push, the message, the leave,
        # the range), from the peer's own address.
        for event in events:
            send_from('127.0.0.1', port, datagram({'n': 'node0', 'e': [event], 's': sequence()}))
        send_from('127.0.0.1', port, datagram({'n': 'node0', 'e': [], 'a': 1, 'b': 2 ** 62,
                                               's': sequence()}))
        # Signed with a wrong secret; and from an address that is no peer's.
        send_from('127.0.0.1', port, datagram({'n': 'node0', 'e': events[:1], 's': sequence()},
                                              b'x' * 32))
        send_from('127.0.0.2', port, datagram({'n': 'node0', 'e': events[:1], 's': sequence()},
                                              BUS_SECRET.encode()))
        # Signed (a node's key leaked, or a captured datagram): a replay, and ids the
        # stream never handed out.
        secret = BUS_SECRET.encode()
        hello = datagram({'n': 'node9', 'e': [], 's': sequence()}, secret)
        send_from('127.0.0.1', port, hello)
        send_from('127.0.0.1', port, hello)
        send_from('127.0.0.1', port, datagram({'n': 'node9', 'e': events[1:2], 'a': 10 ** 6,
                                               'b': 10 ** 6, 's': sequence()}, secret))
        send_from('127.0.0.1', port, datagram({'n': 'node9', 'e': [], 'a': 1, 'b': 2 ** 62,
                                               's': sequence()}, secret))
        expected = {'bad_signature': 5, 'not_peer': 1, 'replay': 1, 'beyond_stream': 3}
        counts = {}

        def all_counted():
            counts.update((reason, dropped(nodes[1], reason)) for reason in expected)
            return counts == expected
        try:
            wait_for(all_counted, what='every forged datagram counted')
        except AssertionError:
            assert counts == expected
        # Nothing reached rose; live delivery, and the group she was "removed" from, go on.
        sent = a0.send_texts(rose['id'], ['after'])
        got = texts(r1, 1)
        assert [m['msgid'] for m in got] == sent and got[0]['content'] == 'after'
        group = a0.send_texts(community, ['group after'], cmd=11)
        assert [m['msgid'] for m in texts(r1, 1)] == group
        r1.expect_nothing(0.5)
        assert nodes[1].health()['bus'] == 'up'
        log = nodes[1].log()
        assert log.count('bus: dropped input') == 1, log  # once a minute at most
    finally:
        a0.close()
        r1.close()


def test_a_forged_range_on_redis_is_dropped_and_delivery_goes_on(cluster):
    """Redis carries no signature (it must be reachable by the nodes only), but no line
    on it may name ids beyond the stream: the review's range froze delivery for good."""
    require_redis()
    import redis

    prefix = 'forged{}'.format(free_port())
    nodes = cluster('redis', 2, BUS=REDIS + '?prefix=' + prefix)
    alice, rose = people(nodes[0], 2)
    befriend(nodes[0], alice, rose)
    a0, r1 = connect(nodes[0], alice), connect(nodes[1], rose)
    try:
        before = a0.send_texts(rose['id'], ['before'])
        assert [m['msgid'] for m in texts(r1, 1)] == before
        client = redis.Redis.from_url(REDIS)
        try:
            client.publish('imchat:{}:all'.format(prefix),
                           json.dumps({'t': 'r', 'n': 'x', 'a': 1, 'b': 2 ** 62}))
            client.publish('imchat:{}:u:{}'.format(prefix, rose['id']), json.dumps(
                {'t': 'm', 'n': 'x', 'i': 10 ** 6, 'w': {'msgid': 10 ** 6, 'cmd': 10}}))
        finally:
            client.close()
        wait_for(lambda: dropped(nodes[1], 'beyond_stream') == 2, what='the forgery counted')
        for n in range(3):
            sent = a0.send_texts(rose['id'], ['after {}'.format(n)])
            assert [m['msgid'] for m in texts(r1, 1)] == sent
        assert nodes[1].health()['bus'] == 'up'
        r1.expect_nothing(0.5)
    finally:
        a0.close()
        r1.close()


def test_a_udp_bus_without_a_long_enough_secret_does_not_start(database_url, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    node = cluster_node('nosecret', database_url, 'udp://127.0.0.1:{}'.format(port), tmp_path,
                        BUS_SECRET='too short').spawn()
    try:
        assert node.process.wait(60) == 1
        log = node.log()
        assert 'CRITICAL cannot start' in log and 'IMCHAT_BUS_SECRET' in log, log
    finally:
        node.stop()


def test_two_deployments_on_one_redis_never_hear_each_other(tmp_path):
    """Two releases side by side, each with the default SQLite database in its own
    folder (the same URL text), one on Redis db 3 and one on db 4 (pub/sub ignores the
    db number): a private message of one reaches nobody of the other. Each database
    names its own deployment, so the channels differ."""
    require_redis()
    nodes = []
    try:
        for name, db in (('one', 3), ('two', 4)):
            nodes.append(cluster_node(name, 'sqlite:///data/imchat.db',
                                      'redis://127.0.0.1:6379/{}'.format(db),
                                      tmp_path / name).spawn())
        for node in nodes:
            node.wait_healthy()
        one, two = nodes
        # The same ids on both sides: user n of one is user n of two.
        alice, bob = people(one, 2)
        carol, dave = people(two, 2)
        assert (alice['id'], bob['id']) == (carol['id'], dave['id'])
        befriend(one, alice, bob)
        befriend(two, carol, dave)
        b1, d2 = connect(one, bob), connect(two, dave)
        a1 = connect(one, alice)
        try:
            # `two` stored fewer messages: `one`'s ids are ahead of its stream.
            sent = a1.send_texts(bob['id'], ['for bob only {}'.format(n) for n in range(3)])
            assert [m['msgid'] for m in texts(b1, 3)] == sent
            c2 = connect(two, carol)
            try:
                mine = c2.send_texts(dave['id'], ['for dave'] * 5)
                got = texts(d2, 5)
                assert [m['msgid'] for m in got] == mine
                assert all(m['content'] == 'for dave' for m in got)
                more = a1.send_texts(bob['id'], ['for bob again'])
                assert [m['msgid'] for m in texts(b1, 1)] == more
                d2.expect_nothing(1.0)
            finally:
                c2.close()
        finally:
            for client in (a1, b1, d2):
                client.close()
        channels = [[line for line in node.log().splitlines() if 'bus: redis' in line][0]
                    .split('channels ')[1] for node in nodes]
        assert channels[0] != channels[1], channels
    finally:
        for node in nodes:
            node.stop()


def test_presence_refreshes_on_several_nodes_never_conflict(cluster):
    """Two nodes refreshing presence three times a second while users come and go on
    both: no deadlock, no optimistic-check failure, no lost row (issue 25: one run in
    four of two workers logged 'could not refresh presence')."""
    import gevent

    nodes = cluster('redis', 2, PRESENCE_TTL=1, PRESENCE_GRACE=0)
    watcher = people(nodes[0], 1)[0]
    users = people(nodes[0], 16)
    for user in users:
        befriend(nodes[0], user, watcher)  # a new account may ask only a few itself

    def churn(user, node):
        for _ in range(6):
            client = connect(node, user)
            gevent.sleep(0.2)
            client.close()
    gevent.joinall([gevent.spawn(churn, user, nodes[n % 2]) for n, user in enumerate(users)],
                   raise_error=True)
    stay = [connect(nodes[n % 2], user) for n, user in enumerate(users[:4])]
    try:
        def online(user):
            return nodes[0].api.post('/user/find', {'id': user['id']}, watcher)[1]['data']['online']
        wait_for(lambda: all(online(u) == 1 for u in users[:4])
                 and all(online(u) == 0 for u in users[4:]), what='presence settled')
        gevent.sleep(1.5)  # a few refreshes with the users staying
        assert all(online(u) == 1 for u in users[:4])
    finally:
        for client in stay:
            client.close()
    for node in nodes:
        log = node.log()
        assert 'presence' not in log.lower() or 'Traceback' not in log, log
        assert 'Deadlock' not in log and 'OptimisticCheck' not in log, log
        assert 'could not' not in log, log


def test_redis_down_is_one_line_when_it_goes_and_one_when_it_comes_back(cluster, tmp_path):
    redis_server = RedisServer(str(tmp_path))
    try:
        nodes = cluster('redis', 2, BUS=redis_server.url)
        alice, rose = people(nodes[0], 2)
        befriend(nodes[0], alice, rose)
        a0, r1 = connect(nodes[0], alice), connect(nodes[1], rose)
        try:
            redis_server.stop()
            wait_for(lambda: nodes[0].health()['bus'] == 'down', what='bus reported down')
            for n in range(12):  # twelve batches, one at a time
                sent = a0.send_texts(rose['id'], ['while down {}'.format(n)])
                assert [m['msgid'] for m in texts(r1, 1, timeout=15)] == sent
            redis_server.start()
            wait_for(lambda: all(node.health()['bus'] == 'up' for node in nodes),
                     what='bus back up')
            sent = a0.send_texts(rose['id'], ['back'])
            assert [m['msgid'] for m in texts(r1, 1)] == sent
            wait_for(lambda: 'bus: the bus answering again' in nodes[0].log(),
                     what='the end of the outage logged')
        finally:
            a0.close()
            r1.close()
        log = nodes[0].log()
        assert log.count('bus: the bus unavailable') == 1, log
        assert log.count('bus: the bus answering again') == 1, log
        assert 'publishing' not in log.replace('(publishing', ''), log
        assert 'Traceback' not in log, log
    finally:
        redis_server.stop()
