"""The Redis transport of the bus: pub/sub, one connection publishing and one listening
in its own greenlet, reconnecting with backoff. It moves bytes only (bus.transport);
what they say is bus.kinds. See docs/architecture.md.

Channels carry a per-deployment prefix (default: the database's deployment id, so
deployments sharing one Redis never hear each other; bus.urls): `<prefix>u:<user>` and `<prefix>c:<community>`
for targeted messages (subscribed while this node holds a connection of that user or a
member of that community), `<prefix>all` for ranges and rare control events.
"""
import json
import logging
import time
from typing import Callable, Iterable, List, Sequence, Tuple

import gevent
import redis
from gevent.event import Event
from redis.connection import Connection, parse_url

from imchat.service.bus.kinds import Message, Range, to_bytes
from imchat.service.bus.transport import BACKOFF_MAX, BACKOFF_MIN, Receive
from imchat.service.bus.urls import redact

log = logging.getLogger(__name__)


class RedisTransport:
    """Redis pub/sub: one connection publishes, one listens (its own greenlet)."""

    needs_subscriptions = True

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.up = False
        self._receive = None
        self._channels = None
        self._publisher = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                               retry=None)
        # Also for what nodes count together (service.shared_limits).
        self.client = self._publisher
        self._sub = None
        self._pending = {}      # channel -> [Event] waiting for the subscribe reply
        self._listener = None
        self._down_until = 0

    def describe(self) -> str:
        return 'redis {} (channels {}*)'.format(redact(self.url), self.prefix)

    def start(self, receive: Receive, channels: Callable[[], List[str]]) -> None:
        self._receive, self._channels = receive, channels
        self._listener = gevent.spawn(self._listen)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.kill(block=False)
        if self._sub is not None:
            self._sub.disconnect()
        self._publisher.close()

    # sending
    def _publish_all(self, pairs):
        if time.monotonic() < self._down_until:
            raise ConnectionError('the bus is down')
        try:
            pipe = self._publisher.pipeline(transaction=False)
            for channel, body in pairs:
                pipe.publish(self.prefix + channel, body)
            pipe.execute()
        except redis.RedisError:
            self._down_until = time.monotonic() + 0.5  # do not stall every batch on it
            raise

    def send_messages(self, items: Sequence[Tuple[List[str], Message]],
                      ranges: Iterable[Range]) -> None:
        pairs = []
        for channels, message in items:
            body = to_bytes(message)
            pairs.extend((channel, body) for channel in channels)
        for covered in ranges:
            pairs.append(('all', to_bytes(covered)))
        self._publish_all(pairs)

    def send(self, kind, channels: Sequence[str]) -> None:
        body = to_bytes(kind)
        self._publish_all([(channel, body) for channel in channels])

    # subscriptions
    def subscribe(self, channels: List[str]) -> None:
        for channel in channels:
            self._pending.setdefault(channel, []).append(Event())
        self._command('SUBSCRIBE', channels)

    def unsubscribe(self, channels: List[str]) -> None:
        self._command('UNSUBSCRIBE', channels)

    def _command(self, name, channels):
        sub = self._sub
        if sub is None or not self.up:
            return  # the listener subscribes to everything when it (re)connects
        try:
            sub.send_command(name, *[self.prefix + c for c in channels])
        except (redis.RedisError, OSError) as error:
            log.warning('bus: %s failed: %s', name, error)

    def wait_subscribed(self, channels: List[str], timeout: float) -> None:
        if not self.up:
            return
        deadline = time.monotonic() + timeout
        for channel in channels:
            for event in list(self._pending.get(channel, ())):
                if not event.wait(max(0, deadline - time.monotonic())):
                    log.warning('bus: no confirmation of the subscription to %s', channel)
                    return

    def _listen(self):
        backoff = BACKOFF_MIN
        while True:
            try:
                self._run_connection()
            except Exception as error:
                if self.up:
                    log.warning('bus: lost redis at %s: %s', redact(self.url), error)
                self.up = False
                self._sub = None
            gevent.sleep(backoff)
            backoff = min(BACKOFF_MAX, backoff * 2)
            if self.up:
                backoff = BACKOFF_MIN

    def _run_connection(self):
        # The URL's password, user and TLS (rediss://) apply to the listener too; pub/sub
        # ignores the database number.
        options = parse_url(self.url)
        options.pop('db', None)
        connection_class = options.pop('connection_class', Connection)
        conn = connection_class(socket_connect_timeout=1, socket_timeout=None, retry=None,
                                protocol=2,  # RESP2: pub/sub messages are plain replies
                                **options)
        conn.connect()
        # Targeted channels first, `all` (the ranges) last, in one command: a range is
        # never heard before the messages it covers.
        channels = self._channels()
        conn.send_command('SUBSCRIBE', *[self.prefix + c for c in channels + ['all']])
        self._sub = conn
        self.up = True
        self._down_until = 0
        log.info('bus: connected to redis at %s', redact(self.url))
        cut = len(self.prefix)
        try:
            while True:
                reply = conn.read_response()
                kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
                channel = reply[1].decode()[cut:]
                if kind == 'message':
                    self._receive(json.loads(reply[2]))
                elif kind == 'subscribe':
                    waiting = self._pending.get(channel)
                    if waiting:
                        waiting.pop(0).set()
                        if not waiting:
                            del self._pending[channel]
        finally:
            self.up = False
            self._sub = None
            conn.disconnect()
            # Nobody waits on a confirmation that will not come.
            for events in self._pending.values():
                for event in events:
                    event.set()
            self._pending.clear()
