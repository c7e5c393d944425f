"""A worker's side of the supervisor (`imchat.process.supervisor`): who it is, the
socket it shares the port with, the watch on its supervisor, its log label.

The supervisor tells each worker who it is through its environment (`WORKER_ENV`,
`LISTEN_FD_ENV`); the server (`imchat.process.server`) asks here, and a process started
by hand is no worker and every function below does nothing.
"""
import logging
import os
import socket
from typing import Callable, Optional, Tuple

import gevent

log = logging.getLogger(__name__)

# Set in each worker's environment by its supervisor: "<index>:<supervisor pid>", and
# the inherited listening socket's descriptor where workers share one. Private: not a
# setting.
WORKER_ENV = '_IMCHAT_WORKER'
LISTEN_FD_ENV = '_IMCHAT_LISTEN_FD'

# How often a worker checks that its supervisor is still there.
PARENT_CHECK_INTERVAL = 1.0


def worker_identity() -> Optional[Tuple[int, int]]:
    """(index, supervisor pid) when this process is a worker, else None."""
    raw = os.environ.get(WORKER_ENV)
    if not raw:
        return None
    index, parent = raw.split(':')
    return int(index), int(parent)


def _address(host, port):
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
    return family, kind, proto, address


def bind_socket(host: str, port: int, reuseport: bool, listen: bool) -> socket.socket:
    """A TCP socket bound to host:port (SO_REUSEPORT when asked), listening if asked.
    Raises OSError (the port is taken)."""
    family, kind, proto, address = _address(host, port)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def share_port(server, config) -> None:
    """In a worker: give the (not yet started) gevent server the socket it shares the
    port with; elsewhere nothing, and the server binds as a single process does."""
    if worker_identity() is None:
        return
    inherited = os.environ.get(LISTEN_FD_ENV)
    if inherited:
        sock = socket.socket(fileno=int(inherited))
    else:
        sock = bind_socket(config['HOST'], config['PORT'], reuseport=True, listen=True)
    sock.setblocking(False)
    server.set_listener(sock)


def watch_supervisor(request_stop: Callable[[str], None]) -> Optional[gevent.Greenlet]:
    """In a worker: call `request_stop(reason)` once the supervisor is gone (its pid is
    no longer our parent), so a worker never outlives it holding the port."""
    identity = worker_identity()
    if identity is None:
        return None
    parent = identity[1]

    def watch():
        while os.getppid() == parent:
            gevent.sleep(PARENT_CHECK_INTERVAL)
        log.warning('the supervisor (pid %s) is gone: stopping', parent)
        request_stop('supervisor gone')
    return gevent.spawn(watch)


def label_worker_logs() -> None:
    """In a worker: start every log line's message with `worker N:`, so one log file
    written by several workers says which wrote what."""
    identity = worker_identity()
    if identity is None:
        return
    prefix = 'worker {}: '.format(identity[0])
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s ' + prefix
                                               + '%(message)s'))
