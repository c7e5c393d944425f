"""The seams between services, on their own: named events (util.signal), the one
delivery path (service.delivery, bus.delivery), the bus's line format (bus.kinds) and
the relay of named events between nodes (bus.node)."""
import logging

import pytest

from imchat.protocol import CMD_RECALL, CMD_ROOM_MSG, CMD_SINGLE_MSG
from imchat.service import delivery as delivery_module
from imchat.service.bus import kinds
from imchat.service.bus.faults import Dependency, Dropped
from imchat.service.bus.channels import Channels
from imchat.service.bus.delivery import BusDelivery
from imchat.service.delivery import LocalDelivery
from imchat.util.signal import Signal


# -- named events ------------------------------------------------------------------

def test_a_signal_calls_its_handlers_in_the_order_they_were_connected():
    calls = []
    joined = Signal('joined')
    joined.connect(lambda user, community: calls.append(('first', user, community)))
    joined.connect(lambda user, community: calls.append(('second', user, community)))
    joined.emit(7, 3)
    assert calls == [('first', 7, 3), ('second', 7, 3)]


def test_an_error_in_a_handler_reaches_whoever_raised_the_event():
    left = Signal('left')
    calls = []

    def broken(*args):
        raise RuntimeError('broken')

    left.connect(broken)
    left.connect(lambda *args: calls.append(args))
    with pytest.raises(RuntimeError):
        left.emit(1, 2)
    assert calls == []


def test_a_relayed_event_skips_the_handlers_that_only_hear_this_nodes_own(caplog):
    unfriended = Signal('unfriended')
    here, relay, after = [], [], []

    def broken(*args):
        raise RuntimeError('broken')

    unfriended.connect(here.append)
    unfriended.connect(relay.append, relayed=False)
    unfriended.connect(broken)
    unfriended.connect(after.append)
    unfriended.emit_relayed(5)
    # Nobody on this node raised it: a failing handler is logged, the others still run.
    assert (here, relay, after) == ([5], [], [5])
    assert [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]


# -- one delivery path ---------------------------------------------------------------

class FakeHub:
    def __init__(self, communities=None):
        self.communities = communities or {}
        self.fanned = []
        self.pushed = []
        self.joined = []

    def online_members(self, community_id):
        return tuple(self.communities.get(community_id, ()))

    def fan_out(self, user_ids, msgid, outgoing, origin=None):
        self.fanned.append((tuple(user_ids), msgid, bytes(outgoing.payload), origin))

    def push(self, user_ids, outgoing, origin=None):
        self.pushed.append((list(user_ids), bytes(outgoing.payload), origin))

    def join_community(self, user_id, community_id):
        self.joined.append((user_id, community_id))


def one_to_one(msgid, sender=1, receiver=2):
    return {'msgid': msgid, 'userid': sender, 'cmd': CMD_SINGLE_MSG, 'dstid': receiver,
            'media': 1, 'content': 'to a friend %d' % msgid, 'createat': 1}


def to_group(msgid, sender=1, community=9):
    return {'msgid': msgid, 'userid': sender, 'cmd': CMD_ROOM_MSG, 'dstid': community,
            'media': 1, 'content': 'to a group %d' % msgid, 'createat': 1}


def recall_in_group(msgid, community=9):
    return {'msgid': msgid, 'userid': 1, 'cmd': CMD_RECALL, 'target': CMD_ROOM_MSG,
            'dstid': community, 'recalledmsgid': msgid - 1, 'createat': 1}


@pytest.fixture
def counted_recipients(monkeypatch):
    """Every use of the recipients rule on the delivery path, by msgid."""
    asked = []
    rule = delivery_module.recipients

    def counting(wire):
        asked.append(wire['msgid'])
        return rule(wire)

    monkeypatch.setattr(delivery_module, 'recipients', counting)
    return asked


def test_local_delivery_addresses_each_message_once_and_skips_the_sender(counted_recipients):
    hub = FakeHub({9: (1, 4, 5)})
    sender = object()
    LocalDelivery(hub).deliver([(one_to_one(11), sender), (to_group(12), None),
                                (recall_in_group(13), None)])
    assert counted_recipients == [11, 12, 13]
    assert [(users, msgid, origin) for users, msgid, _, origin in hub.fanned] == [
        ((2, 1), 11, sender), ((1, 4, 5), 12, None), ((1, 4, 5), 13, None)]
    assert b'"to a friend 11"' in hub.fanned[0][2]


class FakeTransport:
    """Moves nothing: keeps what the bus asked it to send."""

    needs_subscriptions = True
    up = True

    def __init__(self):
        self.messages, self.ranges, self.sent = [], [], []
        self.subscribed = []

    def send_messages(self, items, ranges):
        self.messages.extend(items)
        self.ranges.extend(ranges)

    def send(self, kind, channels):
        self.sent.append((kind, list(channels)))

    def subscribe(self, channels):
        self.subscribed.extend(channels)

    def unsubscribe(self, channels):
        pass

    def wait_subscribed(self, channels, timeout):
        pass


class FakePresence:
    def arrived(self, user_id):
        pass

    def left(self, user_id, still_here):
        pass


def bus_delivery(hub, transport, start=10):
    metrics = FakeMetrics()
    delivery = BusDelivery(LocalDelivery(hub), transport, Channels(transport, FakePresence()),
                       db=None, metrics=metrics, node='n1', start=start,
                       dropped=Dropped(metrics), sending=Dependency('the bus'))
    # The stream has handed out the ids these tests publish (ids beyond it are forged).
    delivery.sequencer.saw_position(start + 100)
    return delivery


class FakeMetrics:
    def inc(self, name, amount=1, **labels):
        pass


def test_bus_delivery_addresses_each_message_once_for_the_bus_and_for_here(
        counted_recipients):
    hub = FakeHub({9: (4,)})
    transport = FakeTransport()
    sender = object()
    bus_delivery(hub, transport).deliver([(to_group(12), None), (one_to_one(11), sender)])
    # Addressed once each, for its channels and for this node's connections alike.
    assert sorted(counted_recipients) == [11, 12]
    assert [(channels, kind.msgid) for channels, kind in transport.messages] == [
        (['u:2', 'u:1'], 11), (['c:9'], 12)]
    assert [(r.first, r.last) for r in transport.ranges] == [(11, 12)]
    # Delivered here through the same path as one process, in id order.
    assert [(users, msgid, origin) for users, msgid, _, origin in hub.fanned] == [
        ((2, 1), 11, sender), ((4,), 12, None)]


def test_what_another_node_publishes_waits_for_its_range_then_takes_the_same_path(
        counted_recipients):
    hub = FakeHub({9: (4,)})
    delivery = bus_delivery(hub, FakeTransport())
    delivery.received_message(kinds.Message('n2', 12, to_group(12)))
    delivery.received_message(kinds.Message('n2', 11, one_to_one(11)))
    assert hub.fanned == []
    delivery.received_range(kinds.Range('n2', 11, 12))
    assert counted_recipients == [12, 11]
    assert [(users, msgid) for users, msgid, _, _ in hub.fanned] == [((2, 1), 11), ((4,), 12)]


def test_a_push_reaches_this_nodes_connections_and_the_users_channels():
    hub = FakeHub()
    transport = FakeTransport()
    frame = delivery_module.encode({'cmd': 13, 'userid': 1, 'dstid': 2})
    origin = object()
    bus_delivery(hub, transport).push([2, 3], frame, origin=origin)
    assert hub.pushed == [([2, 3], bytes(frame.payload), origin)]
    (kind, channels), = transport.sent
    assert channels == ['u:2', 'u:3'] and kind.frame.encode() == bytes(frame.payload)


# -- the line format between nodes ------------------------------------------------

@pytest.mark.parametrize('kind, line', [
    (kinds.Message('n1', 5, {'msgid': 5, 'content': 'é'}),
     '{"t":"m","n":"n1","i":5,"w":{"msgid":5,"content":"é"}}'),
    (kinds.Message('n1', 5), '{"t":"m","n":"n1","i":5}'),
    (kinds.Range('n1', 5, 9), '{"t":"r","n":"n1","a":5,"b":9}'),
    (kinds.Join('n1', 6, 7, 8), '{"t":"j","n":"n1","i":6,"u":7,"c":8}'),
    (kinds.Logout('n1', 'abc'), '{"t":"logout","k":"abc","n":"n1"}'),
    (kinds.Relay('n1', 'leave', [7, 8]), '{"t":"relay","k":"leave","a":[7,8],"n":"n1"}'),
    (kinds.Push('n1', [2], '{"cmd":13}'), '{"t":"push","u":[2],"f":"{\\"cmd\\":13}","n":"n1"}'),
])
def test_each_bus_kind_keeps_the_line_format_nodes_already_speak(kind, line):
    assert kinds.to_bytes(kind) == line.encode('utf-8')
    assert kinds.parse(kinds.json.loads(line)) == kind


def test_a_kind_this_node_does_not_know_is_ignored():
    assert kinds.parse({'t': 'future', 'n': 'n9'}) is None


# -- named events across nodes ------------------------------------------------------

def test_a_relayed_event_runs_on_the_other_node_and_is_not_sent_back(app):
    from imchat.service.bus.node import Bus

    svc = app.extensions['imchat']
    transport = FakeTransport()
    bus = Bus(transport, 'n1', svc.db, svc.hub, svc.metrics)
    left, logged_out = Signal('left'), Signal('logged_out')
    heard = []
    left.connect(lambda user, community: heard.append(('left', user, community)))
    logged_out.connect(lambda key: heard.append(('logout', key)))
    bus.relay('leave', left)
    bus.relay('logout', logged_out)

    left.emit(7, 8)
    logged_out.emit('k1')
    assert [kinds.to_bytes(kind) for kind, _ in transport.sent] == [
        b'{"t":"relay","k":"leave","a":[7,8],"n":"n1"}', b'{"t":"logout","k":"k1","n":"n1"}']
    heard.clear()

    bus.received({'t': 'relay', 'k': 'leave', 'a': [3, 4], 'n': 'n2'})
    bus.received({'t': 'logout', 'k': 'k2', 'n': 'n2'})
    bus.received({'t': 'relay', 'k': 'leave', 'a': [5, 6], 'n': 'n1'})  # our own: ignored
    assert heard == [('left', 3, 4), ('logout', 'k2')]
    assert len(transport.sent) == 2  # nothing relayed back
