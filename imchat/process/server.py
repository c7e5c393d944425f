"""The production server: gevent's pywsgi with gevent-websocket's handler.

Why this wiring: under gevent, simple-websocket (flask-sock's engine) writes frames with
`socket.send`, which may write only part of a large frame; gevent-websocket writes with
`sendall`. gevent-websocket upgrades the connection itself and hands the app a ready
socket in `environ['wsgi.websocket']`, which `imchat.ctrl.chat` uses; under the Flask dev
server there is no such key and the same view falls back to simple-websocket.

`main(create_app)` is what `python wsgi.py` (and so `release/run`) runs: it serves, or
with `IMCHAT_WORKERS` above 1 supervises workers (`imchat.process.supervisor`) that
each serve. `serve(app)` raises the
open-file limit, logs where it listens and what it stores into, and on SIGTERM or SIGINT
stops accepting, lets the app close its WebSockets and finish storing messages, and
returns so the process exits 0.
"""
import gc
import logging
import os
import sys
import time
from typing import Callable, Optional, Tuple

import gevent
import gevent.socket
from gevent.event import Event
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter, WSGIServer
from flask import Flask
from geventwebsocket.handler import WebSocketHandler

from imchat.process import supervisor
from imchat.process.door import Door, DoorHandler
from imchat.process.memory import BurstTrimmer
from imchat.process.signals import listen_url, on_stop_signals
from imchat.process.worker import label_worker_logs, share_port, watch_supervisor
from imchat.protocol import WS_SUBPROTOCOL, offered_subprotocols

log = logging.getLogger(__name__)
access_log = logging.getLogger('imchat.access')

# Allocations between two collections of the cyclic garbage collector's youngest
# generation. At Python's default of 700 a busy server ran one every few messages, each
# walking what survived the last (pending messages, results, frames): 12% of the
# server's CPU under the pairs load (perf). Reference counting still frees nearly all
# memory at once; only objects in cycles wait longer for the collector.
GC_YOUNG_THRESHOLD = 20000

# Connections accepted in one round before the server lets the event loop go idle
# (ImchatServer), and the longest it waits for that before accepting again anyway.
ACCEPT_BATCH = 8
ACCEPT_PAUSE_MAX = 0.05


class ImchatWebSocketHandler(WebSocketHandler):
    """gevent-websocket's handler without its `server.clients` registry, which imchat
    never reads (the hub knows every connection).

    The registry is keyed by the peer's (address, port). Under churn a client port is
    reused while the server is still closing the last connection from it (saving its
    resume point yields): the old connection's cleanup deletes the new one's entry,
    the new one's cleanup then raises KeyError, skips the rest of its cleanup and
    leaves its entry, with the WebSocket it holds, in the registry for ever.
    """

    def run_websocket(self):
        if getattr(self, 'prevent_wsgi_call', False):
            return
        try:
            list(self.application(self.environ, lambda s, h, e=None: []))
        finally:
            if not self.websocket.closed:
                self.websocket.close()
            self.environ.update({'wsgi.websocket': None})
            self.websocket = None

    def start_response(self, status, headers, exc_info=None):
        # The 101 names imchat's subprotocol when the client offered it (a browser
        # offering subprotocols fails a handshake whose answer names none).
        if status.startswith('101') and WS_SUBPROTOCOL in offered_subprotocols(
                self.environ.get('HTTP_SEC_WEBSOCKET_PROTOCOL')):
            headers = list(headers) + [('Sec-WebSocket-Protocol', WS_SUBPROTOCOL)]
        return super().start_response(status, headers, exc_info)

    def take_socket(self):
        """Hand the connection's socket to the caller, who closes it: when the request
        ends, pywsgi then neither reads nor closes it. Returns the socket (a new object
        for the same file descriptor: the server closes the one it accepted) and what
        to call once it is closed (None: nothing); or None, and nothing changes, for
        a socket whose state lives in its object (TLS)."""
        accepted = self.socket
        if type(accepted) is not gevent.socket.socket:
            return None
        self.socket = None
        return gevent.socket.socket(fileno=accepted.detach()), None


class ImchatHandler(DoorHandler, ImchatWebSocketHandler):
    """The door's limits in front of the handler without the leaking registry."""


class ImchatServer(WSGIServer):
    """pywsgi's server, accepting new connections after the work of those it holds.

    pywsgi accepts up to 100 connections whenever the listening socket is readable, and
    each becomes a greenlet in the same queue as the connected people's frames: in a
    reconnect storm (clients closing and reconnecting in a tight loop, every refusal
    answered at once and tried again) the connected got a few round trips a second.
    Here a round accepts at most ACCEPT_BATCH connections, then accepting waits until
    the event loop has nothing else to do (an idle watcher), or ACCEPT_PAUSE_MAX
    seconds when it never has; the storm waits in the kernel's listen queue, where it
    costs nothing."""

    max_accept = ACCEPT_BATCH

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._idle = None
        self._pause = None

    def _do_read(self):
        super()._do_read()
        if self._watcher is None or self.closed:
            return  # stopped meanwhile (full, an error's back-off, closing)
        self.stop_accepting()
        loop = self.loop
        if self._idle is None:
            self._idle = loop.idle()
            self._pause = loop.timer(ACCEPT_PAUSE_MAX)
        self._idle.start(self._resume_accepting)
        self._pause.start(self._resume_accepting)

    def _resume_accepting(self):
        self._idle.stop()
        self._pause.stop()
        if not self.closed:
            self.start_accepting()


def make_server(app, host: Optional[str] = None, port: Optional[int] = None,
                **kwargs) -> WSGIServer:
    """A gevent server for `app` with the door in front (not started)."""
    host = app.config['HOST'] if host is None else host
    port = app.config['PORT'] if port is None else port
    # Through logging, request and error lines carry a time and level like every other
    # line of log.log (pywsgi writes bare lines to stderr by default).
    kwargs.setdefault('error_log', LoggingLogAdapter(log, logging.ERROR))
    server = ImchatServer((host, port), app, handler_class=ImchatHandler, **kwargs)
    # Cheap refusals before the app does any work (imchat.process.door).
    services = app.extensions['imchat']
    server.door = Door(app.config, services.limit_store, services.handshakes,
                       services.metrics)
    # gevent-websocket's handler logs each request to `server.logger` at INFO (and would
    # otherwise make a logger of its own that prints nothing).
    server.logger = access_log
    access_log.setLevel(logging.NOTSET if app.config.get('ACCESS_LOG', True)
                        else logging.WARNING)
    return server


def raise_open_file_limit() -> Optional[Tuple[int, int]]:
    """Raise the soft limit on open files to the hard limit and return (soft, hard),
    or None where the platform has no such limit (Windows).

    Every WebSocket holds a file descriptor, and Linux's usual soft limit of 1024 would
    cap one server at about a thousand users (the seed's note on Linux file limits).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite soft limit for files; its ceiling is fs.nr_open.
        try:
            with open('/proc/sys/fs/nr_open') as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = soft
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning('could not raise the open-file limit from %s to %s: %s',
                        soft, target, error)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def describe_storage(config) -> str:
    """Where uploads go, for logs: never a key or secret."""
    kind = config.get('STORAGE', 'local')
    if kind == 'oss':
        return 'oss bucket {} at {}'.format(config.get('OSS_BUCKET') or '(unset)',
                                           config.get('OSS_ENDPOINT') or '(unset)')
    return '{} directory {}'.format(kind, os.path.abspath(config.get('UPLOAD_DIR', 'mnt')))


def main(create_app: Callable[[], Flask]) -> None:
    """`python wsgi.py`: build the app and serve it; a start that fails (a bad setting, an
    unreachable database, a port in use) logs one CRITICAL line and exits 1."""
    from imchat import configure_logging

    # Set up before the app exists, so even a bad setting is logged as time/level/message.
    level = os.environ.get('IMCHAT_LOG_LEVEL') or 'INFO'
    known = isinstance(logging.getLevelName(level.upper()), int)
    configure_logging(level if known else 'INFO')
    label_worker_logs()
    try:
        app = create_app()
        # IMCHAT_WORKERS above 1: this process supervises workers instead of serving.
        workers = supervisor.prepare(app)
    except Exception as error:
        _fail_to_start(error)
    if workers is not None:
        sys.exit(workers.run())
    serve(app)


def tune_garbage_collector() -> None:
    """Before serving: keep what starting made (modules, the app, Pony's mapping) out of
    the cyclic collector's walks for good, and collect the youngest generation less
    often (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
    log.info('garbage collector: %d objects made while starting set aside, a collection '
             'every %d allocations', gc.get_freeze_count(), gc.get_threshold()[0])


def _fail_to_start(error):
    log.critical('cannot start: %s: %s (IMCHAT_LOG_LEVEL=DEBUG logs the traceback)',
                 type(error).__name__, error)
    log.debug('traceback of the failed start', exc_info=error)
    sys.exit(1)


def serve(app: Flask) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down gracefully and return."""
    config = app.config
    services = app.extensions['imchat']
    limits = raise_open_file_limit()
    if limits is None:
        log.info('open-file limit: not applicable on %s', sys.platform)
    else:
        log.info('open-file limit: %s (hard limit %s)', *limits)

    stop_requested = Event()
    signals_seen = []

    def request_stop(name):
        signals_seen.append(name)
        if len(signals_seen) == 1:
            log.info('%s received: shutting down', name)
            stop_requested.set()
        else:
            # A second signal means the operator will not wait.
            log.warning('%s received during shutdown: exiting now', name)
            os._exit(1)

    handles = on_stop_signals(request_stop)
    watch_supervisor(request_stop)
    tune_garbage_collector()
    # An unbounded pool only so that stop() can wait for, then kill, request greenlets.
    server = make_server(app, spawn=Pool())
    try:
        share_port(server, config)
        server.start()
    except OSError as error:
        _fail_to_start(error)
    trimmer = BurstTrimmer(lambda: services.metrics.value('imchat_connections_total'),
                           lambda: services.handshakes.in_progress)
    trimmer.start()
    log.info('imchat listening on %s (pid %s)', listen_url(server.address), os.getpid())
    log.info('storage: %s', describe_storage(config))

    stop_requested.wait()
    trimmer.stop()
    deadline = time.monotonic() + config.get('SHUTDOWN_TIMEOUT', 5)
    server.close()
    log.info('stopped accepting connections')
    try:
        services.shutdown(timeout=config.get('SHUTDOWN_TIMEOUT', 5))
        clean = True
    except Exception:
        log.exception('the graceful shutdown failed')
        clean = False
    # Requests still running (a long upload, a socket the app did not close) get
    # what is left of the timeout, then are killed.
    server.stop(timeout=max(0.5, deadline - time.monotonic()))
    for handle in handles:
        handle.cancel()
    if not clean:
        sys.exit(1)
    log.info('imchat stopped')
