"""The door of the production server: cheap refusals before the app does any work.

`DoorHandler` is gevent-websocket's handler with four guards and a quieter access log:

- a request whose line and headers have not all arrived within `IMCHAT_HEADER_TIMEOUT`
  seconds is dropped (pywsgi itself waits forever, so a thousand half-open requests
  would use up the server's files); an idle keep-alive connection counts too;
- at most `IMCHAT_CONNECTIONS_PER_ADDRESS` connections open at once, and
  `IMCHAT_CONNECT_RATE` new ones a second, per client address;
- a request body must arrive within `IMCHAT_BODY_TIMEOUT` seconds of its headers plus
  one second per BODY_MIN_RATE bytes read (`body.BodyReader`): a body trickled in is cut
  off with 408, so slow clients cannot hold the server's files or its workers;
- at most `IMCHAT_WS_HANDSHAKES` WebSocket handshakes in progress (a `GET /chat` with a
  valid upgrade, from its request to its registration; the backlog replay after it is
  catch-up, not a handshake: `service.limits.HandshakeSlots`), and at most
  `IMCHAT_WS_HANDSHAKE_RATE` new ones a second: in a reconnect storm the rest get 503
  with `Retry-After` on their request line alone, before a header is parsed or the
  database is asked anything, and connected people keep chatting;
- neither the access log nor the log of malformed requests shows a token or password
  (`redact`);
- a connection accepted once the server is nearly out of open files (within
  `FILES_KEPT_FREE` of its limit, which the database pool, uploads and logs need) gets
  503 with `Retry-After` and is closed: a full server says so, and keeps what it holds.

Per-address limits skip loopback peers unless `IMCHAT_PROXY_COUNT` is set; then the
address is the one the trusted proxies forwarded (`X-Forwarded-For`), known once the
headers are read, and each request counts as a connection (a proxy reuses its
connections for many clients); a request that did not come through them (no, or too
short, an `X-Forwarded-For`) counts under its peer's address.
"""
import logging
import re
import socket
import time
from functools import partial

import gevent
from geventwebsocket.handler import WebSocketHandler

from imchat.process.body import BodyReader
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
# The path of the one WebSocket (ctrl.chat): only an upgrade to it is a handshake.
CHAT_PATH = '/chat'
_CHAT_REQUEST_LINE = re.compile(r'GET /chat[?\s]')
# A token or password as a query parameter, or offered as a WebSocket subprotocol
# (`imchat.token.<token>`); in a log line quoted by repr, the value ends at a quote too.
_SECRETS = re.compile(r'([?&](?:token|passwd|newpasswd)=|imchat\.token\.)[^&\s\'",\\]*',
                      re.IGNORECASE)


def redact(line):
    """`line` (a request line, a log message) with the values of secret query
    parameters, and tokens offered as a subprotocol, replaced by `-`."""
    return _SECRETS.sub(r'\1-', line)


def _refusal(status, msg, reason, retry_after=1):
    body = '{{"code":-1,"msg":"{}","reason":"{}"}}'.format(msg, reason).encode()
    head = ('HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n'
            'Retry-After: {}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n'
            .format(status, len(body), retry_after))
    return status.split()[0], head.encode() + body


TOO_MANY_CONNECTIONS = _refusal('429 Too Many Requests',
                                'too many connections from your address, try again shortly',
                                'rate_limited.address')
TOO_MANY_HANDSHAKES = _refusal('503 Service Unavailable',
                               'the server is busy, reconnect in a moment', 'busy.handshakes')
SERVER_FULL = _refusal('503 Service Unavailable',
                       'the server is full, try again in a while', 'busy.full', retry_after=10)
BODY_TOO_SLOW = _refusal('408 Request Timeout', 'the request body came too slowly',
                         'timeout.body')


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
        self.body_timeout = config['BODY_TIMEOUT']
        self.handshake_rate = HandshakeRate(config['WS_HANDSHAKE_RATE'])
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

    def forwarded_address(self, headers, peer):
        """The client's address as the trusted proxies forwarded it (ProxyFix's rule);
        the peer's own when the request did not come through them all."""
        values = [v.strip() for v in headers.get('X-Forwarded-For', '').split(',')]
        values = [v for v in values if v]
        if len(values) >= self.proxy_count:
            return values[-self.proxy_count]
        return peer or None

    def refuse_handshake_now(self):
        """Whether a WebSocket handshake is to be refused on its request line: all
        slots are taken, or this second's handshakes are spent. Counted."""
        if self.handshakes.full() or not self.handshake_rate.take():
            self.refused('handshakes')
            return True
        return False


class HandshakeRate:
    """A token bucket of new WebSocket handshakes a second for the whole process (`rate`;
    0 is no limit), holding at most one second's worth: refusing past it costs a clock
    read and a subtraction."""

    __slots__ = ('rate', 'tokens', 'at')

    def __init__(self, rate):
        self.rate = rate
        self.tokens = float(rate)
        self.at = time.monotonic()

    def take(self):
        if not self.rate:
            return True
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def is_handshake(method, path, headers):
    """Whether a request is a WebSocket handshake the chat view would accept: a GET of
    /chat asking to upgrade to websocket, with a key and version 13 (RFC 6455 4.1).
    Anything else holds no handshake slot, whatever its headers say."""
    return (method == 'GET'
            and (path or '').split('?', 1)[0] == CHAT_PATH
            and (headers.get('Upgrade') or '').lower() == 'websocket'
            and 'upgrade' in (headers.get('Connection') or '').lower()
            and (headers.get('Sec-WebSocket-Version') or '').strip() == '13'
            and bool((headers.get('Sec-WebSocket-Key') or '').strip()))


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
        if _CHAT_REQUEST_LINE.match(raw_requestline) and door.refuse_handshake_now():
            # In a storm, refuse on the request line alone, before parsing any header.
            self._stop_header_timer()
            raise _Refused(TOO_MANY_HANDSHAKES)
        try:
            result = super().read_request(raw_requestline)
        finally:
            self._stop_header_timer()
        if door.proxy_count:
            door.leave(self._counted)
            self._counted = None
            peer = self.client_address
            address = door.forwarded_address(self.headers,
                                             peer[0] if isinstance(peer, tuple) else '')
            if not door.enter(address):
                raise _Refused(TOO_MANY_CONNECTIONS)
            self._counted = address
        self._end_handshake()
        if is_handshake(self.command, self.path, self.headers):
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
        if self.door.body_timeout:
            self.wsgi_input.rfile = BodyReader(self.rfile, self, self.door.body_timeout)
        # pywsgi hands any request asking to upgrade its bare reader, read to the end of
        # the connection: only a real handshake may have that, the rest get their body.
        environ['wsgi.input'] = self.wsgi_input
        return environ

    def body_too_slow(self):
        """The body missed its deadline: say 408 if the client reads, and shut the
        connection (the app, still reading, meets BodyTooSlow)."""
        self.door.refused('body')
        self.close_connection = True
        sock = self.socket
        try:
            with gevent.Timeout(1, False):
                sock.sendall(BODY_TOO_SLOW[1])
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # gone already

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

    def log_error(self, msg, *args):
        # pywsgi quotes malformed request lines and headers whole, tokens and all.
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = '{} {}'.format(msg, args)
        super().log_error(redact(msg))
