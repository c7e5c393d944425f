"""Stopping the background greenlets of a service."""
from typing import Iterable, Optional

import gevent


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
    still = [g for g in living if not g.dead]
    if still:
        gevent.killall(still, block=True, timeout=1)
