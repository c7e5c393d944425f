"""Limits counted once for the whole deployment (several nodes), not per process.

Stores of sliding-window event counters by key, with the calls of `LimitStore`
(service.limits: `take`, `give_back`, `reset`) and `count`; the login guard (failed
logins, login and registration rates) uses one when a bus joins several nodes:

- `RedisStore` when the bus is Redis: one sorted set per key, changed by one Lua script
  so that a check and its record are one atomic step for every node.
- `DatabaseStore` otherwise (UDP bus): rows of `limit_event`; an event is recorded
  first and then counted among the earlier ones, so two nodes racing cannot both slip
  under the limit.

Unlike `MemoryStore`, these yield (a network round trip); each call is still one atomic
step in Redis or one short transaction, so a check and its record are never split.
"""
import itertools
import os
import time

from pony.orm import db_session, select

_TAKE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return 1
"""


class RedisStore:
    def __init__(self, client, prefix, clock=time.time):
        self.client = client
        self.prefix = prefix + 'limit:'
        self.clock = clock
        self._script = client.register_script(_TAKE)
        self._tickets = itertools.count(1)
        self._node = '{}-{}'.format(os.getpid(), id(self))

    def take(self, key, limit, window):
        ticket = '{}:{}'.format(self._node, next(self._tickets))
        taken = self._script(keys=[self.prefix + key],
                             args=[self.clock(), window, limit, ticket])
        return ticket if taken else None

    def give_back(self, key, ticket):
        self.client.zrem(self.prefix + key, ticket)

    def reset(self, key):
        self.client.delete(self.prefix + key)

    def count(self, key, window):
        return self.client.zcount(self.prefix + key, self.clock() - window, '+inf')


class DatabaseStore:
    def __init__(self, db, clock=time.time):
        self.db = db
        self.clock = clock

    def take(self, key, limit, window):
        now = int(self.clock() * 1000)
        since = now - int(window * 1000)
        with db_session:
            event = self.db.LimitEvent(key=key, at=now)
            event.flush()
            event_id = event.id
        with db_session:
            LimitEvent = self.db.LimitEvent
            ahead = select(e for e in LimitEvent if e.key == key and e.at > since
                           and e.id < event_id).count()
            if limit and ahead >= limit:
                LimitEvent[event_id].delete()
                return None
            # Old events go as new ones come.
            LimitEvent.select(lambda e: e.key == key and e.at <= since).delete(bulk=True)
        return event_id

    def give_back(self, key, ticket):
        with db_session:
            self.db.LimitEvent.select(lambda e: e.id == ticket).delete(bulk=True)

    def reset(self, key):
        with db_session:
            self.db.LimitEvent.select(lambda e: e.key == key).delete(bulk=True)

    def count(self, key, window):
        since = int((self.clock() - window) * 1000)
        with db_session:
            return select(e for e in self.db.LimitEvent if e.key == key and e.at > since).count()


def shared_store(bus):
    """The store every node of the deployment shares: Redis when the bus is Redis, the
    database otherwise."""
    transport = bus.transport
    if getattr(transport, 'client', None) is not None:
        return RedisStore(transport.client, transport.prefix)
    return DatabaseStore(bus.db)
