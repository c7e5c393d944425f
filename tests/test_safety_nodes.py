"""Issue 22 on two nodes: two real server processes on one database (SQLite and MariaDB)
joined by the Redis bus. A request, an acceptance, a block, an approval, a role change,
a kick and a ban made on one node act at once on the connections of the other."""
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import SAFETY_DEFAULTS
from tests.harness import ROOT
from tests.harness.redis_server import redis_answers
from tests.test_bus import cluster_node
from tests.wsclient import ChatClient

pytestmark = pytest.mark.process

REDIS = 'redis://127.0.0.1:6379/0'
_mobiles = iter(range(13600000000, 13699999999))
# Settings of both nodes and of the operator's command (by their names without IMCHAT_).
SETTINGS = dict({k: int(v) if isinstance(v, bool) else v for k, v in SAFETY_DEFAULTS.items()},
                PRESENCE_GRACE=0)


@pytest.fixture
def nodes(database_url, tmp_path):
    """Two nodes on the test's database and a Redis bus of the test's own (a prefix);
    `nodes.admin(*args)` runs `flask --app wsgi admin ...` as an operator would."""
    if not redis_answers():
        pytest.skip('no Redis on 127.0.0.1:6379')
    bus = '{}?prefix=safety{}'.format(REDIS, uuid.uuid4().hex[:8])
    started = []
    try:
        for name in ('node0', 'node1'):
            started.append(cluster_node(name, database_url, bus, tmp_path, **SETTINGS))
            started[-1].start()  # node0 makes the tables before node1 starts
        yield Pair(started, database_url, bus)
    finally:
        for node in started:
            node.stop()


class Pair(list):
    def __init__(self, nodes, database_url, bus):
        super().__init__(nodes)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('IMCHAT_')}
        self.env.update({'IMCHAT_' + k: str(v) for k, v in SETTINGS.items()},
                        IMCHAT_DATABASE_URL=database_url, IMCHAT_BUS=bus,
                        IMCHAT_NODE_ID='operator', IMCHAT_LOG_LEVEL='WARNING')

    def admin(self, *args):
        result = subprocess.run([sys.executable, '-m', 'flask', '--app', 'wsgi', 'admin',
                                 *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def person(node, nickname):
    status, reply = node.api.post('/user/register', {'mobile': str(next(_mobiles)),
                                                 'passwd': 'secret-pass', 'nickname': nickname})
    assert status == 200, reply
    return reply['data']


def call(node, path, account, **data):
    status, reply = node.api.post(path, data, account)
    assert status == 200, (path, reply)
    return reply


def connect(node, account, ignore=(13, 15)):
    """Connect, and wait until the node has registered the connection: it answers a
    frame only then (a read of nothing, acknowledged)."""
    client = ChatClient(node.ws_url(account), timeout=10, ignore=ignore)
    client.send(cmd=12, target=10, dstid=account['id'], msgid=0)
    client.recv_ack(10)
    return client


def event(client, name):
    """The next cmd 17 event; it must be `name`."""
    frame = client.recv(10)
    assert frame['cmd'] == 17 and frame['event'] == name, frame
    return frame


def sent(client, dstid, content, cmd=10):
    client.text(dstid, content, cmd=cmd)
    return client.recv_ack(10)


def test_a_request_acceptance_and_block_reach_the_other_node_at_once(nodes):
    node0, node1 = nodes
    alice, bob = person(node0, 'alice'), person(node0, 'bob')
    b1 = connect(node1, bob, ignore=(13,))
    a0 = None
    try:
        request = call(node0, '/contact/addfriend', alice, dstid=bob['id'], memo='hi bob')
        assert request['data'] == {'status': 'requested'}
        asked = event(b1, 'request')
        assert (asked['userid'], asked['memo'], asked['nickname']) == (alice['id'], 'hi bob',
                                                                      'alice')
        assert sent(b1, alice['id'], 'not yet')['code'] == -1
        a0 = connect(node0, alice)
        call(node1, '/contact/accept', bob, dstid=alice['id'])
        assert event(a0, 'accepted')['userid'] == bob['id']
        # Friends now on both nodes: presence, and messages both ways.
        a0.close()
        gone = b1.recv(10)
        assert (gone['cmd'], gone['userid']) == (15, alice['id']), gone
        a0 = connect(node0, alice)
        back = b1.recv(10)
        assert (back['cmd'], back['userid']) == (15, alice['id']), back
        assert node1.api.post('/user/find', {'id': alice['id']}, bob)[1]['data']['online'] == 1
        assert sent(b1, alice['id'], 'hello alice')['code'] == 0
        assert a0.recv(10)['content'] == 'hello alice'
        # alice blocks bob on node0: on node1, at once, nothing of his reaches her.
        call(node0, '/contact/block', alice, dstid=bob['id'])
        refused = sent(b1, alice['id'], 'still there?')
        assert refused['code'] == -1 and 'block' not in refused['msg']
        b1.send(cmd=13, dstid=alice['id'])
        assert b1.recv_ack(10)['code'] == -1
        seen = node1.api.post('/user/find', {'id': alice['id']}, bob)[1]['data']
        assert seen['online'] == 0
        assert call(node1, '/contact/loadfriend', bob)['rows'] == []
        again = call(node1, '/contact/addfriend', bob, dstid=alice['id'])
        assert again['data'] == {'status': 'requested'}
        assert call(node0, '/contact/requests', alice)['rows'] == []
        # alice leaves: bob, once her friend, hears nothing of it, nor of her request
        # being refused.
        a0.close()
        b1.expect_nothing(1)
    finally:
        for client in (a0, b1):
            if client is not None:
                client.close()


def test_an_approval_role_kick_and_ban_reach_the_other_node_at_once(nodes):
    node0, node1 = nodes
    owner, member, other = (person(node0, name) for name in ('owner', 'member', 'other'))
    community = call(node0, '/contact/createcommunity', owner, name='hikers')['data']
    cid = community['id']
    assert community['joinmode'] == 'approval'
    o0 = connect(node0, owner)
    m1 = connect(node1, member)
    clients = [o0, m1]
    try:
        asked = call(node1, '/contact/joincommunity', member, dstid=cid, memo='me too')
        assert asked['data'] == {'status': 'requested'}
        assert event(o0, 'joinrequest')['userid'] == member['id']
        refused = sent(m1, cid, 'before', cmd=11)
        assert refused['code'] == -1
        call(node0, '/contact/approve', owner, dstid=cid, memberid=member['id'])
        assert event(m1, 'approved')['dstid'] == cid
        assert sent(m1, cid, 'in at last', cmd=11)['code'] == 0
        assert o0.recv(10)['content'] == 'in at last'

        call(node0, '/contact/setrole', owner, dstid=cid, memberid=member['id'], role='admin')
        assert event(m1, 'role')['role'] == 'admin'
        call(node0, '/contact/updatecommunity', owner, dstid=cid, joinmode='open')
        assert call(node1, '/contact/joincommunity', other, dstid=cid)['data'] == {
            'status': 'joined'}
        x1 = connect(node1, other)
        clients.append(x1)
        x1.ignore.add(11)
        assert sent(x1, cid, 'hello all', cmd=11)['code'] == 0  # allowed, and cached so
        call(node0, '/contact/kick', owner, dstid=cid, memberid=other['id'])
        assert event(x1, 'kicked')['dstid'] == cid
        assert sent(x1, cid, 'still here?', cmd=11)['code'] == -1

        # The operator bans the member (a third process, through the bus): both of
        # their sockets close, on either node, and they cannot log in.
        m0 = connect(node0, member, ignore=(11, 13, 15))  # its backlog is not watched
        clients.append(m0)
        out = nodes.admin('ban', member['mobile'], '--reason', 'spam', '--by', 'ops')
        assert 'banned user {}'.format(member['id']) in out
        for client in (m0, m1):
            client.ignore.update({11, 17})
            assert client.close_code(10)[0] == 4401
        status, reply = node1.api.post('/user/login', {'mobile': member['mobile'],
                                                   'passwd': 'secret-pass'})
        assert status == 403 and reply['reason'] == 'auth.banned' and 'spam' in reply['msg']
        found = nodes.admin('find', str(member['id']))
        assert '"banned": "spam"' in found and '"logins": 0' in found
    finally:
        for client in clients:
            client.close()
