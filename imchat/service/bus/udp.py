"""The UDP transport of the bus (the seed's LAN bus): datagrams to every peer, each
carrying the ids it covers, so a lost one is a gap the receivers fill from the
database. It moves bytes only (bus.transport); what they say is bus.kinds, packed
several to a datagram of at most MAX_DATAGRAM bytes (a message too big to fit goes as a
reference: its id). See docs/architecture.md.
"""
import json
import logging
import socket
import time
from typing import Callable, Iterable, List, Sequence, Tuple

import gevent

from imchat.service.bus.kinds import Message, Range, dumps
from imchat.service.bus.transport import Receive

log = logging.getLogger(__name__)

# Largest UDP datagram sent: fits an Ethernet frame, never fragmented.
MAX_DATAGRAM = 1400
# A peer silent for this long counts as gone (each node says hello every second).
PEER_SILENCE = 3.0


class UdpTransport:
    """Datagrams to every peer; each carries the ids it covers, so a lost one is a gap
    the receivers fill from the database."""

    needs_subscriptions = False

    def __init__(self, bind: Tuple[str, int], peers: List[Tuple[str, int]], node: str) -> None:
        self.bind = bind
        self.peers = [p for p in peers if p != bind]
        self.node = node
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
        self._greenlets = [gevent.spawn(self._listen), gevent.spawn(self._hello)]

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.sock is not None:
            self.sock.close()

    def _send(self, data):
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
                self._send(dumps({'n': node, 'e': packet, 'a': ids[0], 'b': ids[-1]}))
                packet.clear()
                ids.clear()

        for _, message in items:
            msgid = message.msgid
            event = message.to_wire()
            if len(dumps(event)) > MAX_DATAGRAM - 100:
                event = Message(node, msgid).to_wire()  # a reference: read from the database
            candidate = dumps({'n': node, 'e': packet + [event], 'a': (ids or [0])[0],
                               'b': msgid})
            if len(candidate) > MAX_DATAGRAM or (ids and ids[-1] != msgid - 1):
                flush()
            packet.append(event)
            ids.append(msgid)
        flush()

    def send(self, kind, channels: Sequence[str]) -> None:
        data = dumps({'n': self.node, 'e': [kind.to_wire()]})
        if len(data) > MAX_DATAGRAM:
            log.warning('bus: a %s event is too big for a datagram; not sent', kind.NAME)
            return
        self._send(data)

    def subscribe(self, channels: List[str]) -> None:
        pass  # every node hears everything

    def unsubscribe(self, channels: List[str]) -> None:
        pass

    def wait_subscribed(self, channels: List[str], timeout: float) -> None:
        pass

    def _hello(self):
        while True:
            self._send(dumps({'n': self.node, 'e': []}))
            gevent.sleep(1)

    def _listen(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
                packet = json.loads(data)
            except OSError:
                gevent.sleep(0.1)
                continue
            except ValueError:
                log.warning('bus: an unreadable datagram')
                continue
            if packet.get('n') == self.node:
                continue
            self._heard[peer] = time.monotonic()
            try:
                for event in packet.get('e', ()):
                    self._receive(event)
                if 'a' in packet:
                    self._receive(Range(packet['n'], packet['a'], packet['b']).to_wire())
            except Exception:
                log.exception('bus: handling a datagram failed')
