"""What a serving process and a supervisor both need to stop and to say where they are:
the stop signals (SIGTERM, SIGINT) delivered to a greenlet, and the URL they log.

Both `imchat.process.server` and `imchat.process.supervisor` import this; it imports
neither, so the two never reach into each other.
"""
import signal
from typing import Callable, List

import gevent

STOP_SIGNALS = ('SIGTERM', 'SIGINT')


def on_stop_signals(callback: Callable[[str], None]) -> List:
    """Call `callback(name)` in a greenlet on SIGTERM or SIGINT; returns the handles (each
    with `cancel()`)."""
    handles = []
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        try:
            handles.append(gevent.signal_handler(number, callback, name))
        except (AttributeError, NotImplementedError, OSError, ValueError):
            # Windows' event loop has no signal watchers; a plain handler only sets
            # an event, which is safe from any greenlet.
            signal.signal(number, lambda signum, frame, name=name: callback(name))
    return handles


def listen_url(address) -> str:
    """`http://host:port` for a listening (host, port, ...) address; IPv6 in brackets."""
    host, port = address[0], address[1]
    return 'http://{}:{}'.format('[{}]'.format(host) if ':' in host else host, port)
