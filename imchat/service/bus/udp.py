"""The UDP transport of the bus (the seed's LAN bus): datagrams to every peer, each
carrying the ids it covers, so a lost one is a gap the receivers fill from the
database. It moves bytes only (bus.transport); what they say is bus.kinds, packed
several to a datagram of at most MAX_DATAGRAM bytes (a message too big to fit goes as a
reference: its id). See docs/architecture.md.

Anyone can send a datagram, and its source address can be forged, so every datagram
is signed: HMAC-SHA256 (key IMCHAT_BUS_SECRET) over its bytes, the 32-byte tag first.
The signed body names its node and a sequence number, a node's clock in microseconds
(moved on by at least one per datagram), so a replayed datagram is refused: each
receiver keeps, per node, the highest number heard and those heard within REPLAY_WINDOW
below it, and refuses anything older or heard before. Datagrams from addresses that
are not the peers' are dropped before the check. Every drop is counted (bus.faults).
"""
import hashlib
import hmac
import json
import logging
import socket
import time
from typing import Callable, Dict, Iterable, List, Sequence, Set, Tuple

import gevent

from imchat.service.bus.faults import Dropped
from imchat.service.bus.kinds import Message, Range, dumps
from imchat.service.bus.transport import Receive

log = logging.getLogger(__name__)

# Largest UDP datagram sent: fits an Ethernet frame, never fragmented (the tag included).
MAX_DATAGRAM = 1400
# A peer silent for this long counts as gone (each node says hello every second).
PEER_SILENCE = 3.0
TAG_BYTES = 32  # HMAC-SHA256
# Microseconds below a node's highest sequence number in which a datagram may still
# arrive (out of order); older ones are refused as replays. Also how far a node's first
# datagram may lie in the past of this node's clock (node clocks agree within it: NTP).
REPLAY_WINDOW = 10_000_000
# As long as any sequence number this century, for measuring a datagram before sending.
SEQ_PLACEHOLDER = 10 ** 16


def sign(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest() + body


class ReplayGuard:
    """Per node: the highest sequence number heard, and those heard in the window below."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._highest: Dict[str, int] = {}
        self._seen: Dict[str, Set[int]] = {}

    def fresh(self, node: str, seq: int) -> bool:
        """Whether `seq` from `node` was never heard (and is not too old); records it."""
        highest = self._highest.get(node)
        if highest is None:
            # A node heard first (or after this one restarted): nothing older than the
            # window by this node's clock, so a captured datagram cannot be played back
            # to a node that just started.
            highest = int(self.clock() * 1e6)
            if seq <= highest - REPLAY_WINDOW:
                return False
            self._highest[node], self._seen[node] = seq, {seq}
            return True
        seen = self._seen[node]
        if seq <= highest - REPLAY_WINDOW or seq in seen:
            return False
        seen.add(seq)
        if seq > highest:
            self._highest[node] = seq
            if len(seen) > 256:
                floor = seq - REPLAY_WINDOW
                self._seen[node] = {n for n in seen if n > floor}
        return True


class UdpTransport:
    """Datagrams to every peer; each carries the ids it covers, so a lost one is a gap
    the receivers fill from the database."""

    needs_subscriptions = False

    def __init__(self, bind: Tuple[str, int], peers: List[Tuple[str, int]], node: str,
                 secret: bytes, dropped: Dropped) -> None:
        self.bind = bind
        self.peers = [p for p in peers if p != bind]
        self.node = node
        self.secret = secret
        self.dropped = dropped
        self.replays = ReplayGuard()
        self._seq = 0
        self._peer_hosts: Set[str] = set()
        self._anyone = any(peer[0].endswith('.255') for peer in self.peers)
        self._receive = None
        self.sock = None
        self._heard = {}
        self._greenlets = []

    @property
    def up(self):
        if self.sock is None:
            return False
        # Every listed peer said hello lately (a broadcast address: anyone did).
        now = time.monotonic()
        anyone = any(now - heard < PEER_SILENCE for heard in self._heard.values())
        return all(anyone if peer[0].endswith('.255') else
                   now - self._heard.get(peer, -PEER_SILENCE) < PEER_SILENCE
                   for peer in self.peers)

    def describe(self) -> str:
        return 'udp on {}:{} to {}'.format(self.bind[0], self.bind[1], ', '.join(
            '{}:{}'.format(*p) for p in self.peers) or 'no peers')

    def start(self, receive: Receive, channels: Callable[[], List[str]]) -> None:
        self._receive = receive
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind(self.bind)
        # Peers named by host name are compared by address with what arrives.
        self._peer_hosts = {socket.gethostbyname(host) for host, _ in self.peers}
        self._greenlets = [gevent.spawn(self._listen), gevent.spawn(self._hello)]

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.sock is not None:
            self.sock.close()

    def _signed(self, packet: dict) -> bytes:
        # A clock in microseconds, moved on per datagram: survives a restart of this
        # node (its next numbers are still above what the others heard before).
        self._seq = max(self._seq + 1, int(time.time() * 1e6))
        packet['s'] = self._seq
        return sign(self.secret, dumps(packet))

    def _send(self, packet: dict):
        data = self._signed(packet)
        for peer in self.peers:
            try:
                self.sock.sendto(data, peer)
            except OSError as error:
                log.debug('bus: sending to %s failed: %s', peer, error)

    def send_messages(self, items: Sequence[Tuple[List[str], Message]],
                      ranges: Iterable[Range]) -> None:
        # Every peer hears everything; each datagram says which ids it covers, so
        # `ranges` need not travel on their own.
        node = self.node
        packet, ids = [], []

        def flush():
            if packet:
                self._send({'n': node, 'e': list(packet), 'a': ids[0], 'b': ids[-1]})
                packet.clear()
                ids.clear()

        for _, message in items:
            msgid = message.msgid
            event = message.to_wire()
            if len(dumps(event)) > MAX_DATAGRAM - 100:
                event = Message(node, msgid).to_wire()  # a reference: read from the database
            candidate = dumps({'n': node, 'e': packet + [event], 'a': (ids or [0])[0],
                               'b': msgid, 's': SEQ_PLACEHOLDER})
            if len(candidate) > MAX_DATAGRAM - TAG_BYTES or (ids and ids[-1] != msgid - 1):
                flush()
            packet.append(event)
            ids.append(msgid)
        flush()

    def send(self, kind, channels: Sequence[str]) -> None:
        packet = {'n': self.node, 'e': [kind.to_wire()]}
        if len(dumps(dict(packet, s=SEQ_PLACEHOLDER))) > MAX_DATAGRAM - TAG_BYTES:
            log.warning('bus: a %s event is too big for a datagram; not sent', kind.NAME)
            return
        self._send(packet)

    def subscribe(self, channels: List[str]) -> None:
        pass  # every node hears everything

    def unsubscribe(self, channels: List[str]) -> None:
        pass

    def wait_subscribed(self, channels: List[str], timeout: float) -> None:
        pass

    def _hello(self):
        while True:
            self._send({'n': self.node, 'e': []})
            gevent.sleep(1)

    def _open(self, data: bytes, peer) -> dict:
        """The datagram's packet, or None (counted) when it must be dropped."""
        if not self._anyone and peer[0] not in self._peer_hosts:
            self.dropped.drop('not_peer', peer[0])
            return None
        body = data[TAG_BYTES:]
        expected = hmac.new(self.secret, body, hashlib.sha256).digest()
        if len(data) <= TAG_BYTES or not hmac.compare_digest(expected, data[:TAG_BYTES]):
            self.dropped.drop('bad_signature', peer[0])
            return None
        try:
            packet = json.loads(body)
            node, seq = packet['n'], packet['s']
            if not isinstance(node, str) or type(seq) is not int \
                    or not isinstance(packet.get('e', []), list):
                raise ValueError(node)
        except (ValueError, KeyError, TypeError):
            self.dropped.drop('unreadable', peer[0])
            return None
        if node == self.node:
            return None  # our own, back through a broadcast address
        if not self.replays.fresh(node, seq):
            self.dropped.drop('replay', node)
            return None
        return packet

    def _listen(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                gevent.sleep(0.1)
                continue
            packet = self._open(data, peer)
            if packet is None:
                continue
            self._heard[peer] = time.monotonic()
            try:
                for event in packet.get('e', ()):
                    self._receive(event)
                if 'a' in packet:
                    self._receive(Range(packet['n'], packet['a'], packet['b']).to_wire())
            except Exception:
                log.exception('bus: handling a datagram failed')
