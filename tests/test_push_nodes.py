"""Web Push with several nodes (real processes on one database, joined by the bus):
each push is sent once, by the node that stored the message, and a person looking at
imchat through another node gets none."""
import json

import pytest

from pushservice import PushService
from test_bus import befriend, cluster, connect, people  # noqa: F401  (a fixture)
from tests.harness import wait_for

SUBJECT = 'mailto:ops@example.com'


@pytest.fixture
def service():
    push_service = PushService(SUBJECT)
    yield push_service
    push_service.close()


def subscribe(node, account, subscription):
    status, reply = node.api.post('/push/subscribe',
                                  {'subscription': json.dumps(subscription)}, account)
    assert status == 200, reply


@pytest.mark.parametrize('kind', ['redis', 'udp'])
def test_one_push_from_the_storing_node_none_while_looking_elsewhere(cluster, kind, service):
    # The nodes start without the suite's environment: instant friends (befriend).
    nodes = cluster(kind, 2, VAPID_SUBJECT=SUBJECT, PUSH_ALLOW_PRIVATE=1, PUSH_SENDERS=1,
                    PUSH_MERGE_SECONDS=0, PRESENCE_TTL=3, FRIEND_REQUESTS=0)
    first, second = nodes
    a, b = people(first, 2)
    befriend(first, a, b)
    key = first.api.post('/push/key')[1]['data']['key']
    assert second.api.post('/push/key')[1]['data']['key'] == key  # one key for the deployment
    service.public_key = key
    subscribe(second, b, service.subscription())
    sender = connect(first, a)
    try:
        looking = connect(second, b)
        # Answered once the connection is registered (and its row written).
        looking.send(cmd=20, visible=1)
        assert looking.recv_ack(10)['code'] == 0
        sender.text(b['id'], 'b looks at node 1')
        seen = sender.recv_ack()['msgid']
        assert looking.recv(10)['msgid'] == seen
        looking.send(cmd=20, visible=0)
        assert looking.recv_ack()['code'] == 0

        probes = []

        def hidden_everywhere():
            sender.text(b['id'], 'probe')
            probes.append(sender.recv_ack()['msgid'])
            assert looking.recv(10)['msgid'] == probes[-1]
            return any(p.payload['msgid'] in probes for p in service.received)
        # Node 0 learns of the hidden page through the database, a moment later.
        wait_for(hidden_everywhere, what='a push once the page is hidden')
        looking.close()
        sender.text(b['id'], 'b is offline')
        last = sender.recv_ack()['msgid']
        # Pushes of the probes before it may still be on their way: wait for this one.
        wait_for(lambda: any(p.payload['msgid'] == last for p in service.received),
                 what='a push once b is offline')
        wait_for(lambda: first.metric('imchat_push_queued') == 0, what='queue drained')
        msgids = [p.payload['msgid'] for p in service.received]
        assert seen not in msgids
        # Every probe stored after the first one pushed was pushed too.
        first_pushed = min(m for m in msgids if m in probes)
        assert {m for m in probes if m >= first_pushed} <= set(msgids)
        assert len(msgids) == len(set(msgids)), 'a message pushed twice'
        assert second.metric('imchat_push_sent_total') == 0
    finally:
        sender.close()
