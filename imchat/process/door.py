"""The door of the production server: cheap refusals before the app does any work.

`DoorHandler` is gevent-websocket's handler with four guards and a quieter access log:

- a request whose line and headers have not all arrived within `IMCHAT_HEADER_TIMEOUT`
  seconds is dropped (pywsgi itself waits forever, so a thousand half-open requests
  would use up the server's files); an idle keep-alive connection counts too;
- at most `IMCHAT_CONNECTIONS_PER_ADDRESS` connections open at once, and
  `IMCHAT_CONNECT_RATE` new ones a second, per client address;
- at most `IMCHAT_WS_HANDSHAKES` WebSocket handshakes in progress (from the upgrade
  request to the end of its backlog, `service.limits.HandshakeSlots`): in a reconnect
  storm the rest get 503 with `Retry-After` at once, and connected people keep chatting;
- the access log never shows a `token` or `passwd` query parameter;
- a connection accepted once the server is nearly out of open files (within
  `FILES_KEPT_FREE` of its limit, which the database pool, uploads and logs need) gets
  503 with `Retry-After` and is closed: a full server says so, and keeps what it holds.

Per-address limits skip loopback peers unless `IMCHAT_PROXY_COUNT` is set; then the
address is the one the trusted proxies forwarded (`X-Forwarded-For`), known once the
headers are read, and each request counts as a connection (a proxy reuses its
connections for many clients).
"""
import logging
import re
import time
from functools import partial

import gevent
from geventwebsocket.handler import WebSocketHandler

from imchat.service.limits import HANDSHAKE_ENVIRON_KEY, limited_address

log = logging.getLogger(__name__)

CONNECT_RATE_WINDOW = 1
# Open files kept for what is not a client connection (the database pool, uploads, log
# files, gevent's thread pool): new connections are refused before the last of them.
FILES_KEPT_FREE = 100
# A connection refused as the server is full waits this long for its request, so that
# closing it does not reset the reply away (a close with unread data is a reset).
FULL_REQUEST_WAIT = 0.5
FULL_WARNING_INTERVAL = 60
_CHAT_REQUEST_LINE = re.compile(r'GET /chat[?\s]')
_SECRET_PARAMS = re.compile(r'([?&](?:token|passwd|newpasswd)=)[^&\s]*', re.IGNORECASE)


def redact(requestline):
    """A request line with the values of secret query parameters replaced by `-`."""
    return _SECRET_PARAMS.sub(r'\1-', requestline)


def _refusal(status, msg, retry_after=1):
    body = '{{"code":-1,"msg":"{}"}}'.format(msg).encode()
    head = ('HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n'
            'Retry-After: {}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n'
            .format(status, len(body), retry_after))
    return status.split()[0], head.encode() + body


TOO_MANY_CONNECTIONS = _refusal('429 Too Many Requests',
                                'too many connections from your address, try again shortly')
TOO_MANY_HANDSHAKES = _refusal('503 Service Unavailable',
                               'the server is busy, reconnect in a moment')
SERVER_FULL = _refusal('503 Service Unavailable',
                       'the server is full, try again in a while', retry_after=10)


def file_ceiling():
    """The lowest file descriptor number at which a new connection is refused (the
    server is full), or None where there is no open-file limit to keep to."""
    try:
        import resource
    except ImportError:  # Windows: no such limit, and sockets are not small numbers
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(soft - FILES_KEPT_FREE, soft // 2)


class _HeadersTooSlow(Exception):
    pass


class _Refused(Exception):
    def __init__(self, reply):
        super().__init__(reply[0])
        self.reply = reply


class Door:
    """The counters the handlers of one server share (no yield between a check and its
    record: every method runs without one)."""

    def __init__(self, config, store, handshakes, metrics):
        self.header_timeout = config['HEADER_TIMEOUT']
        self.per_address = config['CONNECTIONS_PER_ADDRESS']
        self.connect_rate = config['CONNECT_RATE']
        self.proxy_count = config['PROXY_COUNT']
        self.store = store
        self.handshakes = handshakes
        self.metrics = metrics
        self.open = {}
        self.ceiling = file_ceiling()
        self._warned_full_at = None

    def full(self, sock):
        """Whether the server is within FILES_KEPT_FREE of its open-file limit, judged by
        the socket just accepted: the system gives each new file the lowest free number,
        so every number below this socket's is in use."""
        return self.ceiling is not None and sock.fileno() >= self.ceiling

    def refused(self, reason):
        """Count a connection refused at the door (imchat_connections_refused_total)."""
        self.metrics.inc('imchat_connections_refused_total', reason=reason)

    def count_full(self):
        """Count a connection refused as the server is full; warns once a minute."""
        self.refused('full')
        now = time.monotonic()
        if self._warned_full_at is None or now - self._warned_full_at >= FULL_WARNING_INTERVAL:
            self._warned_full_at = now
            log.warning('the server is full: new connections get 503 (%d so far) while '
                        'fewer than %d of its open files are free; raise the open-file '
                        'limit (ulimit -n) or add nodes',
                        self.metrics.value('imchat_connections_refused_total', reason='full'),
                        FILES_KEPT_FREE)

    def enter(self, address):
        """Count a new connection (or, behind proxies, a request) from `address`;
        False when it is over a per-address limit (nothing is counted then)."""
        if address is None:
            return True
        if self.per_address and self.open.get(address, 0) >= self.per_address:
            self.refused('address')
            return False
        if self.connect_rate and not self.store.take('connect:' + address, self.connect_rate,
                                                     CONNECT_RATE_WINDOW):
            self.refused('address')
            return False
        self.open[address] = self.open.get(address, 0) + 1
        return True

    def leave(self, address):
        if address is None:
            return
        left = self.open.get(address, 0) - 1
        if left > 0:
            self.open[address] = left
        else:
            self.open.pop(address, None)

    def forwarded_address(self, headers):
        """The client's address as the trusted proxies forwarded it (ProxyFix's rule)."""
        values = [v.strip() for v in headers.get('X-Forwarded-For', '').split(',')]
        values = [v for v in values if v]
        if len(values) >= self.proxy_count:
            return values[-self.proxy_count]
        return None


class DoorHandler(WebSocketHandler):
    _counted = None
    _header_timer = None
    _handshake = None

    @property
    def door(self):
        return self.server.door

    def handle(self):
        door = self.door
        if door.full(self.socket):
            self._refuse_full()
            return
        if not door.proxy_count:
            peer = self.client_address
            address = limited_address(peer[0] if isinstance(peer, tuple) else '', 0)
            if not door.enter(address):
                # Over the limit before a byte is read: the cheapest refusal is none.
                self.socket.close()
                return
            self._counted = address
        try:
            super().handle()
        finally:
            door.leave(self._counted)
            self._counted = None
            self._end_handshake()

    def _refuse_full(self):
        self.door.count_full()
        sock = self.socket
        try:
            with gevent.Timeout(FULL_REQUEST_WAIT, False):
                sock.recv(65536)  # the request line and headers, read and let go
            sock.sendall(SERVER_FULL[1])
        except OSError:
            pass  # the client has gone: nothing to tell it
        finally:
            sock.close()

    def read_requestline(self):
        if self.door.header_timeout:
            # Runs until the headers are read (read_request) or the request ends.
            self._header_timer = gevent.Timeout(self.door.header_timeout, _HeadersTooSlow)
            self._header_timer.start()
        try:
            return super().read_requestline()
        except _HeadersTooSlow:
            return ''  # pywsgi then closes the connection without a reply

    def read_request(self, raw_requestline):
        door = self.door
        if door.handshakes.full() and _CHAT_REQUEST_LINE.match(raw_requestline):
            # In a storm, refuse on the request line alone, before parsing any header.
            self._stop_header_timer()
            door.refused('handshakes')
            raise _Refused(TOO_MANY_HANDSHAKES)
        try:
            result = super().read_request(raw_requestline)
        finally:
            self._stop_header_timer()
        if door.proxy_count:
            door.leave(self._counted)
            self._counted = None
            address = door.forwarded_address(self.headers)
            if not door.enter(address):
                raise _Refused(TOO_MANY_CONNECTIONS)
            self._counted = address
        if self.headers.get('Upgrade', '').lower() == 'websocket':
            self._end_handshake()
            self._handshake = door.handshakes.enter()
            if self._handshake is None:
                door.refused('handshakes')
                raise _Refused(TOO_MANY_HANDSHAKES)
        return result

    def _handle_client_error(self, ex):
        if isinstance(ex, _Refused):
            self.close_connection = True
            return ex.reply
        if isinstance(ex, _HeadersTooSlow):
            return None
        return super()._handle_client_error(ex)

    def get_environ(self):
        environ = super().get_environ()
        if self._handshake is not None:
            environ[HANDSHAKE_ENVIRON_KEY] = self._handshake
        return environ

    def handle_one_request(self):
        try:
            return super().handle_one_request()
        finally:
            self._stop_header_timer()
            self._end_handshake()

    def take_socket(self):
        """The socket outlives the request (`ImchatWebSocketHandler.take_socket`): it
        counts as a connection from its address until its new owner closes it."""
        taken = super().take_socket()
        if taken is None:
            return None
        sock, on_closed = taken
        counted, self._counted = self._counted, None
        if counted is not None:
            on_closed = partial(self.door.leave, counted)
        return sock, on_closed

    def _stop_header_timer(self):
        if self._header_timer is not None:
            self._header_timer.close()
            self._header_timer = None

    def _end_handshake(self):
        if self._handshake is not None:
            self._handshake.release()
            self._handshake = None

    def format_request(self):
        self.requestline = redact(self.requestline or '')
        return super().format_request()
