"""Abuse limits: how much one address, one mobile or one user may do, and how fast.

Every counter lives behind `LimitStore`, whose one implementation here is in memory
(`MemoryStore`, good for one process). A deployment-wide store (Redis) implements the
same three calls so that, for example, the failed-login limit counts once across nodes.

The rule that makes the failed-login limit hold under concurrency: an attempt is
counted *before* the slow password check, in code that never yields, and settled
after it (given back when the password was right). So when a hundred wrong guesses
arrive at once, at most the limit of them are ever checked; the rest get 429 at once.

Per-address limits never count loopback peers (127.0.0.0/8, ::1) unless the server sits
behind proxies (`IMCHAT_PROXY_COUNT`), where the forwarded address counts instead: local
tools, tests and load generators are not throttled. The failed-login limit counts
everyone, loopback included.
"""
import collections
import ipaddress
import itertools
import time

import gevent
from gevent import monkey

from imchat.service.errors import TooManyRequests

# Keys idle this long past their window are forgotten when the store grows large.
_PRUNE_AT = 100000


class LimitStore:
    """Sliding-window event counters by key. Every method returns without yielding
    (a Redis store does the same in one atomic script), so a check and its record
    can never be split by another request."""

    def take(self, key, limit, window):
        """Record one event for `key` unless `limit` events are already recorded in the
        last `window` seconds; return a ticket (true) when recorded, None when full."""
        raise NotImplementedError

    def give_back(self, key, ticket):
        """Forget one event recorded by `take` (an attempt that turned out not to count)."""
        raise NotImplementedError

    def reset(self, key):
        """Forget every event of `key`."""
        raise NotImplementedError

    def count(self, key, window):
        """How many events of `key` are recorded in the last `window` seconds."""
        raise NotImplementedError


class MemoryStore(LimitStore):
    """A `LimitStore` in this process's memory."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._events = {}
        self._tickets = itertools.count(1)

    def take(self, key, limit, window):
        now = self.clock()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= _PRUNE_AT:
                self._prune(now, window)
            events = self._events[key] = collections.deque()
        while events and events[0][0] <= now - window:
            events.popleft()
        if len(events) >= limit:
            return None
        ticket = next(self._tickets)
        events.append((now, ticket))
        return ticket

    def give_back(self, key, ticket):
        events = self._events.get(key)
        if not events:
            return
        for index, (_, recorded) in enumerate(events):
            if recorded == ticket:
                del events[index]
                return

    def reset(self, key):
        self._events.pop(key, None)

    def count(self, key, window):
        since = self.clock() - window
        return sum(1 for at, _ in self._events.get(key, ()) if at > since)

    def _prune(self, now, window):
        for key in [k for k, ev in self._events.items() if not ev or ev[-1][0] <= now - window]:
            del self._events[key]


def is_loopback(address):
    try:
        return ipaddress.ip_address((address or '').split('%')[0]).is_loopback
    except ValueError:
        return False


def limited_address(address, proxy_count):
    """The address per-address limits count for a peer, or None when they do not apply:
    a loopback peer with no proxy in front (local tools, tests, load generators)."""
    if not address:
        return None
    if not proxy_count and is_loopback(address):
        return None
    return address


class LoginGuard:
    """The limits on /user/login and /user/register.

    Failed logins, counting everyone: at most `attempts` in `window` seconds per mobile
    from one client address, and per client address. A mobile's own failures, from all
    addresses together, slow its logins rather than lock it: from `attempts` failures on
    each attempt waits (1 s, doubling, at most MAX_DELAY), and only at
    MOBILE_FACTOR times `attempts` is it refused. So a stranger guessing someone's
    password from one address locks only that address out of it, and its owner still
    logs in. All logins, right or wrong: at most `rate` a minute per mobile and per
    (non-loopback) address. Registrations: at most `register_rate` an hour per
    (non-loopback) address. A limit of 0 is off.
    """

    LOGIN_RATE_WINDOW = 60
    REGISTER_WINDOW = 3600
    MOBILE_FACTOR = 10
    MAX_DELAY = 30

    def __init__(self, store, attempts, window, rate=0, register_rate=0, proxy_count=0):
        self.store = store
        self.attempts = attempts
        self.window = window
        self.rate = rate
        self.register_rate = register_rate
        self.proxy_count = proxy_count

    def begin_login(self, mobile, client_addr):
        """Count a login attempt before its password is checked; returns an `Attempt`
        to settle. Raises TooManyRequests (nothing is counted then)."""
        limited = limited_address(client_addr, self.proxy_count)
        taken = []
        try:
            if self.rate:
                for key in ('login:m:' + mobile, limited and 'login:a:' + limited):
                    if key:
                        self._take(taken, key, self.rate, self.LOGIN_RATE_WINDOW,
                                   'too many logins, try again in a minute')
            failed_keys, delay = (), 0
            if self.attempts:
                address = client_addr or ''
                mobile_key = 'fail:m:' + mobile
                failed_keys = ('fail:p:{}@{}'.format(mobile, address), 'fail:a:' + address,
                               mobile_key)
                for key, limit in zip(failed_keys, (self.attempts, self.attempts,
                                                    self.attempts * self.MOBILE_FACTOR)):
                    self._take(taken, key, limit, self.window,
                               'too many failed logins, try again in a few minutes')
                delay = self.delay_after(self.store.count(mobile_key, self.window) - 1)
        except TooManyRequests:
            for key, ticket in taken:
                self.store.give_back(key, ticket)
            raise
        return Attempt(self, [(k, t) for k, t in taken if k in failed_keys], mobile, delay)

    def delay_after(self, failures):
        """Seconds a login of a mobile waits after `failures` recent failures of it."""
        if failures < self.attempts:
            return 0
        return min(2 ** (failures - self.attempts), self.MAX_DELAY)

    def begin_register(self, client_addr):
        """Count a registration from this address. Raises TooManyRequests."""
        limited = limited_address(client_addr, self.proxy_count)
        if self.register_rate and limited:
            self._take([], 'register:a:' + limited, self.register_rate, self.REGISTER_WINDOW,
                       'too many registrations from your address, try again later',
                       reason='rate_limited.register')

    def _take(self, taken, key, limit, window, refusal, reason='rate_limited.login'):
        ticket = self.store.take(key, limit, window)
        if ticket is None:
            raise TooManyRequests(refusal, reason=reason)
        taken.append((key, ticket))


class Attempt:
    """A login attempt counted as failed until `succeeded()` says otherwise; it waits
    `delay` seconds before the password is checked (a mobile under attack)."""

    def __init__(self, guard, failed_tickets, mobile, delay=0):
        self.guard = guard
        self.failed_tickets = failed_tickets
        self.mobile = mobile
        self.delay = delay

    def succeeded(self):
        """The password was right: the attempt is not a failure, and the mobile's
        earlier failures are forgiven."""
        for key, ticket in self.failed_tickets:
            self.guard.store.give_back(key, ticket)
        self.guard.store.reset('fail:m:' + self.mobile)

    def failed(self):
        """The password was wrong: the attempt stays counted."""


class MessageRate:
    """Messages one *user* may send, whatever the number of their connections: a token
    bucket of `message_burst` refilled at `message_rate` a second, both read from
    `settings` (the hub) at each message. A rate of 0 is no limit."""

    def __init__(self, settings):
        self.settings = settings
        self._buckets = {}

    def allows(self, user_id):
        """Take one message from the user's bucket; False when they are going too fast."""
        rate, burst = self.settings.message_rate, self.settings.message_burst
        if not rate:
            return True
        now = time.monotonic()
        allowance, at = self._buckets.get(user_id, (burst, now))
        allowance = min(burst, allowance + (now - at) * rate)
        if allowance < 1:
            self._buckets[user_id] = (allowance, now)
            return False
        if len(self._buckets) >= _PRUNE_AT:
            self._prune(now, burst / rate)
        self._buckets[user_id] = (allowance - 1, now)
        return True

    def _prune(self, now, full):
        # A bucket untouched for `full` seconds is full again: forgetting it changes nothing.
        for user_id in [u for u, (_, at) in self._buckets.items() if now - at > full]:
            del self._buckets[user_id]


class ConnectionCap:
    """At most `per_user` open WebSockets per user (0: no limit): a new one closes the
    user's oldest, so a user who opens more than that is not refused, yet cannot pile up
    connections."""

    def __init__(self, per_user, close):
        self.per_user = per_user
        # close(client): ends one connection politely (the hub's close with a code).
        self.close = close
        self._open = {}

    def admit(self, client):
        """Record a newly registered connection; close the oldest over the cap."""
        clients = self._open.setdefault(client.user_id, collections.OrderedDict())
        clients[client] = None
        while self.per_user and len(clients) > self.per_user:
            oldest, _ = clients.popitem(last=False)
            self.close(oldest)

    def release(self, client):
        clients = self._open.get(client.user_id)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._open[client.user_id]


# The WSGI environ key under which the door (imchat.process.door) leaves a WebSocket's handshake
# slot; the chat view gives it back once the connection is registered (the backlog
# replay after that is catch-up, not a handshake).
HANDSHAKE_ENVIRON_KEY = 'imchat.handshake'


# The longest a handshake or catch-up step waits for an idle loop. Under steady traffic
# the loop may never be idle (every iteration finds some socket ready): waiting without
# a bound held every handshake slot until the traffic stopped, and the door refused
# everyone new.
IDLE_WAIT_MAX = 0.1


def after_connected_work() -> None:
    """Wait until the event loop has nothing else to do, or IDLE_WAIT_MAX: a
    handshake's (and a catch-up's) database work runs after the frames of the people
    already connected, so a reconnect storm slows the reconnecting, not them; and it
    still goes on, at worst a step every IDLE_WAIT_MAX, when they never stop talking.
    Under a server that does not run on gevent (the Flask dev server's threads) there
    is no loop to wait for."""
    if monkey.is_module_patched('socket'):
        with gevent.Timeout(IDLE_WAIT_MAX, False):
            gevent.idle()


def release_handshake(environ):
    slot = environ.get(HANDSHAKE_ENVIRON_KEY)
    if slot is not None:
        slot.release()


class HandshakeSlots:
    """At most `limit` WebSocket handshakes in progress (from the upgrade request to its
    registration) in this process; 0 is no limit. A reconnect storm then costs the
    server a bounded amount of work, and the rest are refused cheaply at the door."""

    def __init__(self, limit):
        self.limit = limit
        self.in_progress = 0

    def full(self):
        return bool(self.limit) and self.in_progress >= self.limit

    def enter(self):
        """A `Slot` to release when the handshake is over, or None when all are taken."""
        if self.limit and self.in_progress >= self.limit:
            return None
        self.in_progress += 1
        return _Slot(self)


class _Slot:
    __slots__ = ('slots',)

    def __init__(self, slots):
        self.slots = slots

    def release(self):
        if self.slots is not None:
            self.slots.in_progress -= 1
            self.slots = None
