"""What the bus says in its log when something goes wrong, so that a fault lasting an
hour is two lines and not a flood (issue 25): `Dependency` for something the bus needs
(Redis, the database) going away and coming back, `Dropped` for what it refused to take
off the wire (forged, replayed, out of range), counted as a metric by reason and
summed up in the log at most once a minute. See docs/scaling.md.
"""
import logging
import time
from typing import Dict, Optional

log = logging.getLogger(__name__)

# Seconds between two log lines about dropped bus input.
DROP_LOG_INTERVAL = 60.0


class Dependency:
    """One line when `name` stops answering (with the first error), one when it answers
    again (with how long and how many failures); failures between are only counted."""

    def __init__(self, name: str, logger: logging.Logger = log) -> None:
        self.name = name
        self.log = logger
        self.down_since: Optional[float] = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, what: str, error: BaseException) -> None:
        """`what` (e.g. 'publishing 3 messages') failed because of `error`."""
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.failures = 1
            self.log.warning('bus: %s unavailable (%s failed: %s: %s); counting failures '
                             'until it answers', self.name, what, type(error).__name__,
                             error)

    def answered(self) -> None:
        if self.down_since is None:
            return
        seconds = time.monotonic() - self.down_since
        self.down_since = None
        self.log.warning('bus: %s answering again after %.1f s; %d calls failed meanwhile',
                         self.name, seconds, self.failures)


class Dropped:
    """Bus input refused, counted in `imchat_bus_dropped_total{reason=...}`; the log
    gets the first drop at once and then one summary a minute while drops go on."""

    def __init__(self, metrics, logger: logging.Logger = log,
                 interval: float = DROP_LOG_INTERVAL) -> None:
        self.metrics = metrics
        self.log = logger
        self.interval = interval
        self._pending: Dict[str, int] = {}
        self._last_log = -interval
        self._example = ''

    def drop(self, reason: str, source: object = '') -> None:
        if self.metrics is not None:
            self.metrics.inc('imchat_bus_dropped_total', reason=reason)
        self._pending[reason] = self._pending.get(reason, 0) + 1
        self._example = '{} from {}'.format(reason, source) if source else reason
        now = time.monotonic()
        if now - self._last_log >= self.interval:
            self._last_log = now
            counts = ', '.join('{} {}'.format(r, n) for r, n in sorted(self._pending.items()))
            self._pending.clear()
            self.log.warning('bus: dropped input: %s (latest: %s); the next summary in '
                             '%d s at the earliest', counts, self._example, self.interval)
