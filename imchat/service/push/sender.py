"""Sending pushes without ever holding up storing or delivering messages: a bounded
queue (the oldest push is dropped when it is full, and counted) drained by a small
pool of greenlets. Each push is encrypted and its VAPID header signed in gevent's
thread pool (so at most one per sending greenlet at a time), posted with a timeout to
the address checked by `endpoint.resolve`, and tried again with back-off on 429 and 5xx
(or no answer); a 404 or 410 means the browser unsubscribed, and the subscription is
removed.

Each sending greenlet keeps one connection open per push service (scheme, host, port):
a thousand pushes to one service are a thousand requests on a few connections, not a
thousand TCP and TLS handshakes. The address is checked when a connection is opened;
one that fails is dropped and the push tried again on a fresh one.
"""
import http.client
import logging
import socket
import ssl
from collections import deque
from typing import Callable, NamedTuple

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from imchat.service.push.crypto import encrypt
from imchat.service.push.endpoint import EndpointRefused, parse_endpoint, resolve
from imchat.util.greenlets import stop_gently

log = logging.getLogger(__name__)

# Tries of one push in all (the first and the retries).
ATTEMPTS = 4
# Longest wait before a retry, whatever a Retry-After asks (seconds).
RETRY_MAX = 60
# Bytes of a push service's answer read at most (only its status matters); a longer
# answer ends its connection, the rest unread.
ANSWER_MAX = 16 * 1024
# Push services one sending greenlet keeps a connection open to at most.
CONNECTIONS_MAX = 32
# Pushes encrypted at once (in gevent's thread pool). Each holds the GIL for most of
# its millisecond, and every thread that wants the GIL makes the event loop wait for it
# (up to the interpreter's switch interval each time): one at a time keeps the acks of
# messages, whose path wakes the loop many times, from queueing behind a convoy.
SEALING_AT_ONCE = 1


class Push(NamedTuple):
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl: int
    urgency: str      # very-low, low, normal, high (RFC 8030)
    topic: str        # a later push with the same topic replaces an undelivered one
    attempt: int = 0


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, not to a second DNS answer."""

    def __init__(self, host, address, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(_PinnedHTTP):
    default_port = 443
    _context = ssl.create_default_context()

    def connect(self):
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class Sender:
    def __init__(self, vapid, metrics, gone: Callable[[int], None], allow_private=False,
                 queue_max=10000, workers=4, timeout=10, retry_seconds=1.0):
        self.vapid = vapid
        self.metrics = metrics
        self.gone = gone
        self.allow_private = allow_private
        self.queue_max = queue_max
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._queue = deque()
        self._ready = Event()
        self._sealing = Semaphore(SEALING_AT_ONCE)
        self._stopping = False
        self._workers = [gevent.spawn(self._work) for _ in range(workers)]

    def put(self, push: Push) -> None:
        """Queue a push; never blocks. A full queue drops its oldest push."""
        if len(self._queue) >= self.queue_max:
            self._queue.popleft()
            self.metrics.inc('imchat_push_dropped_total')
        self._queue.append(push)
        self.metrics.set('imchat_push_queued', len(self._queue))
        self._ready.set()

    def stop(self) -> None:
        self._queue.clear()
        # Waited for, like the planner: one may be inside a session (a gone endpoint).
        self._stopping = True
        self._ready.set()
        stop_gently(self._workers)

    def _work(self):
        queue = self._queue
        connections = {}  # (scheme, host, port) -> this greenlet's open connection
        try:
            while not self._stopping:
                if not queue:
                    self._ready.clear()
                    self._ready.wait()
                    continue
                push = queue.popleft()
                self.metrics.set('imchat_push_queued', len(queue))
                try:
                    self._send(push, connections)
                except Exception:
                    log.exception('push: sending to subscription %s failed',
                                  push.subscription_id)
        finally:
            for connection in connections.values():
                connection.close()

    def _send(self, push, connections):
        try:
            target = parse_endpoint(push.endpoint, self.allow_private)
        except EndpointRefused as error:
            # Not removed: the refusal may pass (DNS), and it costs nothing to keep.
            log.warning('push: subscription %s refused: %s', push.subscription_id, error)
            self.metrics.inc('imchat_push_failed_total', reason='refused')
            return
        with self._sealing:
            headers, body = gevent.get_hub().threadpool.apply(self._seal, (push, target))
        status, retry_after = None, None
        try:
            with gevent.Timeout(self.timeout):
                status, retry_after = self._post(target, headers, body, connections)
        except EndpointRefused as error:
            log.warning('push: subscription %s refused: %s', push.subscription_id, error)
            self.metrics.inc('imchat_push_failed_total', reason='refused')
            return
        except (gevent.Timeout, OSError, http.client.HTTPException) as error:
            log.info('push: no answer from %s: %s', target.audience, error or 'timeout')
        if status is not None and 200 <= status < 300:
            self.metrics.inc('imchat_push_sent_total')
        elif status in (404, 410):
            self.metrics.inc('imchat_push_failed_total', reason='gone')
            self.gone(push.subscription_id)
        elif status is None or status == 429 or status >= 500:
            self._retry(push, retry_after)
        else:
            log.warning('push: %s answered %s for subscription %s', target.audience, status,
                        push.subscription_id)
            self.metrics.inc('imchat_push_failed_total', reason='refused_by_service')

    def _seal(self, push, target):
        # In a thread: an ECDH exchange, and now and then an ECDSA signature.
        headers = {'TTL': str(push.ttl), 'Urgency': push.urgency,
                   'Content-Encoding': 'aes128gcm',
                   'Content-Type': 'application/octet-stream',
                   'Authorization': self.vapid.header(target.audience)}
        if push.topic:
            headers['Topic'] = push.topic
        return headers, encrypt(push.payload, push.p256dh, push.auth)

    def _post(self, target, headers, body, connections):
        origin = (target.scheme, target.host, target.port)
        connection = connections.pop(origin, None)
        reused = connection is not None
        if connection is None:
            # Checked here, when connecting: the connection goes to the very address.
            address = resolve(target, self.allow_private)
            connection_class = _PinnedHTTPS if target.scheme == 'https' else _PinnedHTTP
            connection = connection_class(target.host, address, target.port, self.timeout)
        try:
            try:
                connection.request('POST', target.path, body=body, headers=headers)
                answer = connection.getresponse()
            except (OSError, http.client.HTTPException):
                connection.close()
                if not reused:
                    raise
                # The service closed a connection idle between two pushes: a new one.
                return self._post(target, headers, body, connections)
            data = answer.read(ANSWER_MAX + 1)
            if len(data) <= ANSWER_MAX and not answer.will_close:
                if len(connections) >= CONNECTIONS_MAX:
                    connections.pop(next(iter(connections))).close()
                connections[origin] = connection
                connection = None
            return answer.status, answer.getheader('Retry-After')
        finally:
            if connection is not None:
                connection.close()

    def _retry(self, push, retry_after):
        attempt = push.attempt + 1
        if attempt >= ATTEMPTS:
            self.metrics.inc('imchat_push_failed_total', reason='gave_up')
            return
        self.metrics.inc('imchat_push_retries_total')
        delay = self.retry_seconds * 2 ** push.attempt
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, int(retry_after))
        gevent.spawn_later(min(delay, RETRY_MAX), self.put, push._replace(attempt=attempt))
