"""Giving memory back to the system after a burst of connections.

Thousands of WebSockets opened at once each hold, for their handshake, a greenlet's
saved stack, the request's objects (environ, handler, buffered reader, Flask's
contexts) and the backlog's pages. Once the handshakes are over nearly all of it is
free again, but scattered among what the connections keep, so glibc's allocator
cannot shrink its heap and keeps it all: the bench measured 26-31 KB of RSS per
connection after a burst of 5,000 against 2.6 KB when they open 36 at a time.
Much of it is also garbage in reference cycles that outlived the young collections
while its handshake was in flight. A full collection frees that, then `malloc_trim(0)`
hands the free pages inside the heap back (madvise), whatever lies around them. Both
walk a lot, so they run only after a burst: once a few seconds have passed with many
new connections and no handshake left in progress.
"""
import ctypes
import gc
import logging
from typing import Callable, Optional

import gevent

log = logging.getLogger(__name__)

# How often the trimmer looks, and how many new connections since its last trim make
# a burst worth trimming after.
TRIM_INTERVAL = 5
BURST_CONNECTIONS = 256


def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's malloc_trim, or None elsewhere (musl, macOS, Windows)."""
    try:
        # The process's own symbols, libc's among them (no ldconfig run to find it).
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class BurstTrimmer:
    """Calls malloc_trim once a burst of handshakes is over. `connections()` is the
    count of connections made so far, `handshaking()` how many handshakes are in
    progress."""

    def __init__(self, connections: Callable[[], int], handshaking: Callable[[], int],
                 trim: Optional[Callable[[int], int]] = None):
        self.connections = connections
        self.handshaking = handshaking
        self.trim = trim or _malloc_trim()
        self.trimmed_at = connections()
        self.trims = 0
        self._greenlet = None

    def start(self) -> None:
        if self.trim is not None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def check(self) -> bool:
        """Trim if a burst has ended since the last trim; whether it trimmed."""
        made = self.connections()
        if self.trim is None or made - self.trimmed_at < BURST_CONNECTIONS or self.handshaking():
            return False
        burst, self.trimmed_at = made - self.trimmed_at, made
        self.trims += 1
        # What the handshakes left in reference cycles survived young collections while
        # they were in flight, and the old generation is collected rarely
        # (server.GC_YOUNG_THRESHOLD): collected now, its memory is free to give back.
        gc.collect()
        self.trim(0)
        log.debug('gave memory back after %d new connections', burst)
        return True

    def _run(self):
        while True:
            gevent.sleep(TRIM_INTERVAL)
            try:
                self.check()
            except Exception:
                log.exception('could not give memory back')
