"""Stopping the background greenlets of a service."""
import logging
from typing import Iterable, List, Optional

import gevent

log = logging.getLogger(__name__)

# Seconds killed greenlets get to end (their `finally` clauses: a rollback, a close).
KILL_WAIT = 1.0


def stop_gently(greenlets: Iterable[Optional[gevent.Greenlet]], timeout: float = 5.0) -> None:
    """End background greenlets already told to stop (by a flag each checks between
    its units of work, and an event set to wake it): wait up to `timeout` for them to
    finish what they are doing, then kill those still running.

    Killing one at once raises in the middle of whatever it waits on, a database reply
    included: its connection, left half-way through the reply, fails its rollback, and
    a process stopping on that connection can wait for ever."""
    living = [g for g in greenlets if g is not None and not g.dead]
    if not living:
        return
    gevent.joinall(living, timeout=timeout)
    kill([g for g in living if not g.dead])


def kill(greenlets: List[gevent.Greenlet], wait: float = KILL_WAIT) -> None:
    """Kill these greenlets and wait up to `wait` seconds for them to end; one that
    does not is logged and left, never raised about. (gevent.killall with a timeout
    raises gevent.Timeout, a BaseException: out of a shutdown it skipped the rest of
    the stopping, and out of a test's teardown it broke every test after it.)"""
    if not greenlets:
        return
    gevent.killall(greenlets, block=False)
    gevent.joinall(greenlets, timeout=wait)
    still = [g for g in greenlets if not g.dead]
    if still:
        log.warning('%d background greenlet(s) still running %.0f s after being killed: %s',
                    len(still), wait, ', '.join(repr(g) for g in still))
