import collections
import threading
import time


class SlidingWindow:
    """At most `limit` events per key in the last `window` seconds, in memory.

    Good for one process; several nodes each count their own share.
    """

    def __init__(self, limit, window, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allows(self, key):
        """Whether `key` is still under the limit (records nothing)."""
        now = self.clock()
        with self._lock:
            events = self._events.get(key)
            if not events:
                return True
            while events and events[0] <= now - self.window:
                events.popleft()
            return len(events) < self.limit

    def hit(self, key):
        """Record an event for `key`."""
        now = self.clock()
        with self._lock:
            self._events[key].append(now)
            if len(self._events) > 100000:
                self._forget_idle(now)

    def reset(self, key):
        with self._lock:
            self._events.pop(key, None)

    def _forget_idle(self, now):
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]
