"""The greenlets that read connections with data (`GeventConnection` in the
background), kept between bursts."""
from typing import Callable

import gevent
from gevent.hub import Waiter

# Greenlets kept waiting to read the next connection with data: enough for the
# connections that get frames at the same moment under load; each costs a Python data
# stack (16 KB) while it waits.
SPARE_READERS = 32


class Readers:
    """A connection has a reader only while it reads; one that is done waits (up to
    SPARE_READERS of them) for the next connection with data, since a new greenlet for
    each burst of frames costs more than reading them (its Python data stack is mapped
    and touched anew: about 35 µs a burst on this machine, against a few for a
    switch)."""

    def __init__(self):
        self.spare = []

    def start(self, read: Callable[[], None]) -> None:
        """Run `read()` in a spare greenlet or a new one. Only from the event loop."""
        if self.spare:
            self.spare.pop().switch(read)
        else:
            gevent.spawn(self._serve, read)

    def _serve(self, read):
        while read is not None:
            read()
            read = None
            if len(self.spare) < SPARE_READERS:
                waiter = Waiter()
                self.spare.append(waiter)
                read = waiter.get()


# One pool for the process: every connection's reads share it.
readers = Readers()
