"""The message bus that joins several imchat processes (nodes) into one deployment.

    IMCHAT_BUS=none                                   one process, no bus (the default)
    IMCHAT_BUS=redis://host:port/db[?prefix=name]     Redis pub/sub
    IMCHAT_BUS=udp://bind-host:port?peers=h:p,h:p     datagrams to every peer (the seed's LAN bus)

The bus is a thin transport behind the hub's fan-out: after a batch of messages
commits, MessageService hands it to `Bus.publish`, which sends it to the other nodes and
delivers it here through the same ordering as what the other nodes send. The rest of
the server never knows whether a message crossed nodes.

THE INVARIANT (order and no loss with several writers)

1. Message ids are dense and commit in id order. Every inserting transaction moves the
   `message` stream's row on (model.take_ids); that row stays locked until the commit,
   so a second writer waits, a rolled-back batch gives its ids back, and when id N is
   committed every id below N is committed too. (This is Synapse's "stream" with one
   position, made safe for several writers by the row lock instead of per-writer
   positions.)
2. Each node delivers to its connections in id order, and only up to `done`: the
   highest id such that every id at or below it has either reached this node (and been
   delivered) or is known to concern nobody here. A writer, after publishing a batch's
   messages to their targets, publishes the batch's id range ("covered"); a message
   above `done` waits (held) until the ids below it are covered.
3. A gap (an id range nobody covered: a writer died between commit and publish, a
   datagram was lost, the bus was down) is filled from the database after GAP_WAIT:
   the node reads the rows of the gap, delivers those that concern its connections in
   id order, and moves `done` past them. Each node also reads the stream's position
   every POLL seconds, so a gap at the very end (the last writer died) is found too.
4. A connection registers (and this node hears its channels) before it reads its
   backlog from the database. Whatever this node did not hear was published before, so
   was committed before, so is in the backlog; whatever it hears later is delivered in
   id order above what the backlog gave (Client drops ids it already has).

So every connection sees increasing ids, and `since` = the highest id it saw never
skips one: every id below it was committed, and either delivered or not its own.

Redis channels carry a per-deployment prefix (default: from the database URL, so
deployments sharing one Redis never hear each other): `<prefix>u:<user>` and
`<prefix>c:<community>` for targeted messages (subscribed while this node holds a
connection of that user or a member of that community), `<prefix>all` for ranges and
rare control events (logout, join). UDP sends everything to every peer, in datagrams
of at most MAX_DATAGRAM bytes: a message too big to fit goes as a reference (its id)
that the receiver reads from the database.
"""
import bisect
import hashlib
import json
import logging
import os
import socket
import time
from urllib.parse import parse_qs, urlsplit

import gevent
from gevent.event import Event
from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.protocol import CMD_RECALL, CMD_ROOM_MSG, recipients
from imchat.util.clock import now_ms
from imchat.transport.codec import OutgoingFrame

log = logging.getLogger('imchat.bus')

# Seconds a gap in the ids may stay open before it is filled from the database.
GAP_WAIT = 0.3
# Seconds between reads of the stream's position (finds a gap at the very end).
POLL = 0.5
# Rows read per query when filling a gap.
FILL_PAGE = 500
# Largest UDP datagram sent: fits an Ethernet frame, never fragmented.
MAX_DATAGRAM = 1400
# Seconds a node waits for the bus to confirm a new subscription before reading a
# connection's backlog (when the bus is down it does not wait).
SUBSCRIBE_WAIT = 3
# Reconnect backoff, seconds.
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
# UDP: a peer silent for this long counts as gone (each node says hello every second).
PEER_SILENCE = 3.0


class BusURLError(ValueError):
    pass


def default_node_id():
    return '{}-{}'.format(socket.gethostname(), os.getpid())


def parse_bus_url(url, database_url=''):
    """('none', {}) | ('redis', {url, prefix}) | ('udp', {bind, peers})."""
    url = (url or 'none').strip()
    if url == 'none':
        return 'none', {}
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == 'redis':
        if not parts.hostname:
            raise BusURLError('a redis bus reads redis://host:port/db')
        prefix = (query.get('prefix') or [''])[0]
        if not prefix:
            # One deployment is one database: nodes on the same database share channels,
            # others (test deployments on the one Redis) never hear them.
            prefix = hashlib.sha1(database_url.encode()).hexdigest()[:12]
        db = parts.path.lstrip('/') or '0'
        return 'redis', {'url': 'redis://{}:{}/{}'.format(parts.hostname, parts.port or 6379, db),
                         'prefix': 'imchat:{}:'.format(prefix)}
    if parts.scheme == 'udp':
        if not parts.hostname or not parts.port:
            raise BusURLError('a udp bus reads udp://bind-host:port?peers=host:port,host:port')
        peers = []
        for item in ','.join(query.get('peers') or []).split(','):
            item = item.strip()
            if not item:
                continue
            host, _, port = item.rpartition(':')
            if not host or not port.isdigit():
                raise BusURLError('udp peer {!r} should read host:port'.format(item))
            peers.append((host, int(port)))
        return 'udp', {'bind': (parts.hostname, parts.port), 'peers': peers}
    raise BusURLError('unsupported bus {!r}: use none, redis://... or udp://...'.format(url))


def _dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


class Sequencer:
    """Releases messages to this node's connections in id order, only past ids that are
    all accounted for (see the module's invariant)."""

    def __init__(self, start, deliver):
        self.done = start          # every id <= done is delivered or not ours
        self.top = start           # highest id known to be committed
        self.ranges = []           # sorted [first, last] covered above done
        self.held = {}             # msgid -> (wire, outgoing, origin) waiting for done
        self.stuck_since = None
        self.paused = False        # a join waits for its channel (see Bus._apply_join)
        self._deliver = deliver

    def hold(self, wire, outgoing, origin=None):
        msgid = wire['msgid']
        if msgid <= self.done:
            return  # already filled from the database
        if msgid not in self.held or origin is not None:
            self.held[msgid] = (wire, outgoing, origin)
        self.top = max(self.top, msgid)

    def cover(self, first, last):
        if last <= self.done:
            return
        bisect.insort(self.ranges, [max(first, self.done + 1), last])
        self.top = max(self.top, last)
        self.advance()

    def saw_position(self, pos):
        if pos > self.top:
            self.top = pos
            self.advance()

    def advance(self):
        if self.paused:
            return
        done = self.done
        while self.ranges and self.ranges[0][0] <= done + 1:
            done = max(done, self.ranges.pop(0)[1])
        self._release_to(done)
        self.stuck_since = None if self.done >= self.top else (
            self.stuck_since or time.monotonic())

    def _release_to(self, upto, rows=()):
        """Deliver what is held up to `upto` (with `rows` from the database), in order;
        stops early (paused) after an item whose delivery asks to wait. Never yields
        (`deliver` only queues frames), so greenlets never interleave in here."""
        if upto <= self.done:
            return
        ready = {msgid: item for msgid, item in rows}
        for msgid in [m for m in self.held if m <= upto]:
            ready[msgid] = self.held.pop(msgid)
        order = sorted(ready)
        for n, msgid in enumerate(order):
            wire, outgoing, origin = ready[msgid]
            try:
                wait = self._deliver(wire, outgoing, origin)
            except Exception:
                log.exception('delivering message %s failed', msgid)
                wait = False
            if wait and msgid < upto:
                # Everything up to `upto` is accounted for: keep the rest for later.
                for later in order[n + 1:]:
                    self.held[later] = ready[later]
                self.done = msgid
                bisect.insort(self.ranges, [msgid + 1, upto])
                self.paused = True
                return
            self.paused = bool(wait)
        self.done = upto
        while self.ranges and self.ranges[0][1] <= upto:
            self.ranges.pop(0)

    def resume(self, rows):
        """Go on after a pause, with more of the database's rows to hold."""
        for msgid, item in rows:
            if msgid > self.done:
                self.held.setdefault(msgid, item)
                self.top = max(self.top, msgid)
        self.paused = False
        self.advance()

    def fill(self, upto, rows):
        """The database's rows (msgid, (wire, outgoing, None)) for (done, upto]: every
        committed id in that range."""
        if self.paused:
            return
        self._release_to(upto, rows)
        self.advance()

    def gap_age(self):
        return 0 if self.stuck_since is None else time.monotonic() - self.stuck_since


class Bus:
    """One node's end of the bus; `transport` moves bytes between nodes."""

    def __init__(self, transport, node_id, db, hub, metrics, encode, presence_ttl=30):
        self.transport = transport
        self.node = node_id
        self.db = db
        self.hub = hub
        self.metrics = metrics
        self.encode = encode
        self.presence_ttl = presence_ttl
        self.sequencer = None
        self._counts = {}           # channel -> local connections needing it
        self._user_communities = {}  # user -> communities counted for them
        self._connections = {}      # user -> local connections
        self._greenlets = []
        self._stopping = False
        self._local_push = None
        self._relayed = {}
        transport.bus = self

    # -- life ----------------------------------------------------------------------

    def start(self):
        self.sequencer = Sequencer(self.position(), self._deliver)
        self.transport.start()
        self._greenlets = [gevent.spawn(self._watch_gaps), gevent.spawn(self._keep_presence)]
        log.info('bus: %s as node %s', self.transport.describe(), self.node)

    def stop(self):
        self._stopping = True
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.transport.stop()
        node = self.node
        try:
            with db_session:
                self.db.Presence.select(lambda p: p.node == node).delete(bulk=True)
        except Exception:
            log.exception('could not clear the presence of node %s', self.node)

    def status(self):
        return 'up' if self.transport.up else 'down'

    # -- sending -------------------------------------------------------------------

    def publish(self, stored):
        """A committed batch: [(wire, outgoing, origin)] in id order. Sends it to the other
        nodes, then delivers it here (in id order with what they send)."""
        if not stored:
            return
        items, ranges = [], []
        for wire, outgoing, origin in stored:
            msgid = wire['msgid']
            if ranges and ranges[-1][1] == msgid - 1:
                ranges[-1][1] = msgid
            else:
                ranges.append([msgid, msgid])
            to = recipients(wire)
            targets = (['u:{}'.format(user_id) for user_id in to.user_ids]
                       or ['c:{}'.format(to.community_id)])
            items.append((targets, {'t': 'm', 'n': self.node, 'i': msgid, 'w': wire}))
        # Held here first: a gap filled from the database while the send is slow still
        # knows each message's origin (the sender's connection does not get it back).
        seq = self.sequencer
        for wire, outgoing, origin in stored:
            seq.hold(wire, outgoing, origin)
        try:
            self.transport.send_messages(items, ranges)
        except Exception as error:
            # Stored all the same: the other nodes fill the gap from the database.
            log.warning('bus: publishing %d messages failed: %s', len(items), error)
        for first, last in ranges:
            seq.cover(first, last)

    def announce(self, event, targets=('all',)):
        event['n'] = self.node
        try:
            self.transport.send_event(event, targets)
        except Exception as error:
            log.warning('bus: sending %s failed: %s', event.get('t'), error)

    # listeners the services call -------------------------------------------------

    def logged_out(self, token_key):
        self.announce({'t': 'logout', 'k': token_key})

    def joined(self, user_id, community_id):
        """A user joined a community (committed): every node holding the user's
        connections applies it at its place in the id order (the join took an id)."""
        with db_session:
            row = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                      dstid=community_id)
            position = row.joined_msgid if row is not None else 0
        if not position:
            return
        join = {'msgid': position, 'join': [user_id, community_id]}
        self.sequencer.hold(join, None)
        try:
            self.transport.send_messages(
                [(['u:{}'.format(user_id)], {'t': 'j', 'n': self.node, 'i': position,
                                             'u': user_id, 'c': community_id})],
                [[position, position]])
        except Exception as error:
            log.warning('bus: publishing a join failed: %s', error)
        self.sequencer.cover(position, position)

    def carry_pushes(self):
        """Ephemeral frames (typing, presence, receipts: `Hub.push`, never stored) reach
        the users' connections on every node: the hub's push goes here too."""
        local_push = getattr(self.hub, 'push', None)
        if local_push is None:
            return
        self._local_push = local_push

        def push(user_ids, outgoing, origin=None):
            user_ids = list(user_ids)
            local_push(user_ids, outgoing, origin=origin)
            self.announce({'t': 'push', 'u': user_ids,
                           'f': bytes(outgoing.payload).decode('utf-8')},
                          targets=['u:{}'.format(u) for u in user_ids])
        self.hub.push = push

    def relay(self, kind, listeners):
        """Calls of these listeners here are made on every other node too (with the
        listeners as they are now: the relay itself is not called back)."""
        local = list(listeners)
        if kind == 'leave':
            local.append(self._count_leave)
        self._relayed[kind] = local
        listeners.append(lambda *args: self.announce({'t': 'relay', 'k': kind,
                                                      'a': list(args)}))
        if kind == 'leave':
            listeners.append(self._count_leave)

    def _count_leave(self, user_id, community_id):
        communities = self._user_communities.get(user_id)
        if communities is not None and community_id in communities:
            communities.discard(community_id)
            self._unsubscribe(['c:{}'.format(community_id)])

    # -- hub hooks: which channels this node needs --------------------------------

    def attach(self, user_id, community_ids):
        """A connection of `user_id` registered here; returns once this node hears its
        channels (or at once when the bus is down)."""
        count = self._connections.get(user_id, 0)
        self._connections[user_id] = count + 1
        channels = ['u:{}'.format(user_id)]
        if count == 0:
            self._user_communities[user_id] = set(community_ids)
            channels += ['c:{}'.format(c) for c in community_ids]
            self._set_presence(user_id, True)
        self._subscribe(channels)

    def detach(self, user_id):
        count = self._connections.get(user_id, 0) - 1
        if count > 0:
            self._connections[user_id] = count
            self._unsubscribe(['u:{}'.format(user_id)])
            return
        self._connections.pop(user_id, None)
        channels = ['u:{}'.format(user_id)] + [
            'c:{}'.format(c) for c in self._user_communities.pop(user_id, ())]
        self._unsubscribe(channels)
        self._set_presence(user_id, False)

    def _apply_join(self, position, user_id, community_id):
        """At the join's place in the id order: the user's connections here get the
        community's messages from now on. When this node did not hear the community
        yet, it waits (paused) until it does, and reads what was published before that
        from the database, so the joiner misses nothing after the join."""
        communities = self._user_communities.get(user_id)
        if communities is None or community_id in communities:
            return False
        communities.add(community_id)
        self.hub.join_community(user_id, community_id)
        channel = 'c:{}'.format(community_id)
        self._counts[channel] = self._counts.get(channel, 0) + 1
        if self._counts[channel] > 1 or not self.transport.needs_subscriptions:
            return False
        # In its own greenlet: nothing the sequencer calls may yield.
        gevent.spawn(self._finish_join, position, community_id)
        return True

    def _finish_join(self, position, community_id):
        rows = []
        channel = 'c:{}'.format(community_id)
        try:
            self.transport.subscribe([channel])
            self.transport.wait_subscribed([channel], SUBSCRIBE_WAIT)
            with db_session:
                found = select(m for m in self.db.Message if m.dstid == community_id
                               and m.id > position and (m.cmd == CMD_ROOM_MSG or (
                                   m.cmd == CMD_RECALL and m.media == CMD_ROOM_MSG)))[:]
                rows = [(m.id, m.to_wire()) for m in found]
        except Exception:
            log.exception('bus: reading community %s after a join failed', community_id)
        self.sequencer.resume([(msgid, (wire, self.encode(wire), None))
                               for msgid, wire in rows])

    def _subscribe(self, channels):
        new = []
        for channel in channels:
            self._counts[channel] = self._counts.get(channel, 0) + 1
            if self._counts[channel] == 1:
                new.append(channel)
        if new:
            self.transport.subscribe(new)
        self.transport.wait_subscribed(channels, SUBSCRIBE_WAIT)

    def _unsubscribe(self, channels):
        gone = []
        for channel in channels:
            count = self._counts.get(channel, 0) - 1
            if count > 0:
                self._counts[channel] = count
            else:
                self._counts.pop(channel, None)
                gone.append(channel)
        if gone:
            self.transport.unsubscribe(gone)

    def channels(self):
        return list(self._counts)

    # -- receiving (the transport's listener greenlet) -----------------------------

    def received(self, event):
        if event.get('n') == self.node:
            return
        kind = event.get('t')
        seq = self.sequencer
        if kind == 'm':
            self.metrics.inc('imchat_bus_messages_received_total')
            wire = event.get('w')
            if wire is None:  # a reference: too big for a datagram
                if event['i'] <= seq.done:
                    return
                wire = self._read_message(event['i'])
                if wire is None:
                    return
            seq.hold(wire, self.encode(wire))
        elif kind == 'r':
            seq.cover(event['a'], event['b'])
        elif kind == 'logout':
            self.hub.end_session(event['k'])
        elif kind == 'j':
            seq.hold({'msgid': event['i'], 'join': [event['u'], event['c']]}, None)
        elif kind == 'relay':
            for listener in self._relayed.get(event['k'], ()):
                try:
                    listener(*event['a'])
                except Exception:
                    log.exception('bus: a relayed %s failed', event['k'])
        elif kind == 'push':
            if self._local_push is not None:
                self._local_push(event['u'], OutgoingFrame(event['f'].encode('utf-8')))

    def _deliver(self, wire, outgoing, origin):
        """Deliver one released item here; True asks the sequencer to wait."""
        if 'join' in wire:
            return self._apply_join(wire['msgid'], *wire['join'])
        to = recipients(wire)
        user_ids = to.user_ids or self.hub.online_members(to.community_id)
        self.hub.fan_out(user_ids, wire['msgid'], outgoing, origin=origin)

    # -- the database side ---------------------------------------------------------

    def position(self):
        with db_session:
            row = self.db.Stream.get(name='message')
            return row.pos if row is not None else 0

    def _read_message(self, msgid):
        with db_session:
            row = self.db.Message.get(id=msgid)
            return row.to_wire() if row is not None else None

    def _watch_gaps(self):
        next_poll = 0
        while True:
            gevent.sleep(0.1)
            try:
                seq = self.sequencer
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + POLL
                    seq.saw_position(self.position())
                if seq.done < seq.top and seq.gap_age() >= GAP_WAIT:
                    self._fill(seq.top)
            except Exception:
                log.exception('bus: filling a gap failed')
                gevent.sleep(1)

    def _fill(self, upto):
        seq = self.sequencer
        while seq.done < upto:
            start = seq.done
            with db_session:
                rows = select(m for m in self.db.Message if m.id > start and m.id <= upto
                              ).order_by(lambda m: m.id)[:FILL_PAGE]
                page = [(row.id, (row.to_wire(), None)) for row in rows]
                end = upto if len(page) < FILL_PAGE else page[-1][0]
                # Joins take ids too (ContactService): the ones in the gap.
                page += [(position, ({'msgid': position, 'join': [user_id, community_id]},
                                     None)) for user_id, community_id, position in select(
                    (c.ownerid, c.dstid, c.joined_msgid) for c in self.db.Contact
                    if c.cate == CONTACT_COMMUNITY and c.joined_msgid > start
                    and c.joined_msgid <= end)]
            if seq.done != start or seq.paused:
                gevent.sleep(0.05)
                continue  # moved on (or waits for a join) while we read
            # Expected while the bus is down; worth a line when it is up.
            log.log(logging.INFO if self.transport.up else logging.DEBUG,
                    'bus: filled ids %s to %s from the database', start + 1, end)
            seq.fill(end, [(msgid, (wire, None if 'join' in wire else self.encode(wire), None))
                           for msgid, (wire, _) in page])

    # presence: `online` across nodes ----------------------------------------------

    def is_online(self, user_id):
        if self.hub.is_online(user_id):
            return True
        with db_session:
            now = now_ms()
            return self.db.Presence.exists(lambda p: p.userid == user_id and p.expireat > now)

    def online_among(self, user_ids):
        """Those of `user_ids` connected to any node."""
        user_ids = list(user_ids)
        online = {u for u in user_ids if self.hub.is_online(u)}
        rest = [u for u in user_ids if u not in online]
        if rest:
            with db_session:
                now = now_ms()
                online.update(select(p.userid for p in self.db.Presence
                                     if p.userid in rest and p.expireat > now)[:])
        return [u for u in user_ids if u in online]

    def _set_presence(self, user_id, online):
        try:
            with db_session:
                Presence = self.db.Presence
                row = Presence.get(userid=user_id, node=self.node)
                if online:
                    expireat = now_ms() + self.presence_ttl * 1000
                    if row is None:
                        Presence(userid=user_id, node=self.node, expireat=expireat)
                    else:
                        row.expireat = expireat
                elif row is not None and not self._connections.get(user_id):
                    row.delete()
        except Exception:
            log.exception('bus: could not record the presence of user %s', user_id)

    def _keep_presence(self):
        while True:
            gevent.sleep(max(0.2, self.presence_ttl / 3))
            try:
                with db_session:
                    now = now_ms()
                    expireat = now + self.presence_ttl * 1000
                    node = self.node
                    for row in self.db.Presence.select(lambda p: p.node == node):
                        row.expireat = expireat
                    self.db.Presence.select(lambda p: p.expireat <= now).delete(bulk=True)
            except Exception:
                log.exception('bus: could not refresh presence')


class RedisTransport:
    """Redis pub/sub: one connection publishes, one listens (its own greenlet)."""

    needs_subscriptions = True

    def __init__(self, url, prefix):
        import redis

        self.url = url
        self.prefix = prefix
        self.bus = None
        self.up = False
        self._redis = redis
        self._publisher = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                               retry=None)
        # Also for what nodes count together (service.shared_limits).
        self.client = self._publisher
        self._sub = None
        self._pending = {}      # channel -> [Event] waiting for the subscribe reply
        self._listener = None
        self._down_until = 0

    def describe(self):
        return 'redis {} (channels {}*)'.format(self.url, self.prefix)

    def start(self):
        self._listener = gevent.spawn(self._listen)

    def stop(self):
        if self._listener is not None:
            self._listener.kill(block=False)
        if self._sub is not None:
            self._sub.disconnect()
        self._publisher.close()

    # sending
    def _publish_all(self, pairs):
        if time.monotonic() < self._down_until:
            raise ConnectionError('the bus is down')
        try:
            pipe = self._publisher.pipeline(transaction=False)
            for channel, body in pairs:
                pipe.publish(self.prefix + channel, body)
            pipe.execute()
        except self._redis.RedisError:
            self._down_until = time.monotonic() + 0.5  # do not stall every batch on it
            raise

    def send_messages(self, items, ranges):
        pairs = []
        for targets, event in items:
            body = _dumps(event)
            pairs.extend((target, body) for target in targets)
        for first, last in ranges:
            pairs.append(('all', _dumps({'t': 'r', 'n': self.bus.node, 'a': first, 'b': last})))
        self._publish_all(pairs)

    def send_event(self, event, targets):
        body = _dumps(event)
        self._publish_all([(target, body) for target in targets])

    # subscriptions
    def subscribe(self, channels):
        for channel in channels:
            self._pending.setdefault(channel, []).append(Event())
        self._command('SUBSCRIBE', channels)

    def unsubscribe(self, channels):
        self._command('UNSUBSCRIBE', channels)

    def _command(self, name, channels):
        sub = self._sub
        if sub is None or not self.up:
            return  # the listener subscribes to everything when it (re)connects
        try:
            sub.send_command(name, *[self.prefix + c for c in channels])
        except (self._redis.RedisError, OSError) as error:
            log.warning('bus: %s failed: %s', name, error)

    def wait_subscribed(self, channels, timeout):
        if not self.up:
            return
        deadline = time.monotonic() + timeout
        for channel in channels:
            for event in list(self._pending.get(channel, ())):
                if not event.wait(max(0, deadline - time.monotonic())):
                    log.warning('bus: no confirmation of the subscription to %s', channel)
                    return

    def _listen(self):
        backoff = BACKOFF_MIN
        while True:
            try:
                self._run_connection()
            except Exception as error:
                if self.up:
                    log.warning('bus: lost redis at %s: %s', self.url, error)
                self.up = False
                self._sub = None
            gevent.sleep(backoff)
            backoff = min(BACKOFF_MAX, backoff * 2)
            if self.up:
                backoff = BACKOFF_MIN

    def _run_connection(self):
        from redis.connection import Connection

        parts = urlsplit(self.url)
        conn = Connection(host=parts.hostname, port=parts.port, socket_connect_timeout=1,
                          socket_timeout=None, retry=None,
                          protocol=2)  # RESP2: pub/sub messages are plain replies
        conn.connect()
        # Targeted channels first, `all` (the ranges) last, in one command: a range is
        # never heard before the messages it covers.
        channels = self.bus.channels()
        conn.send_command('SUBSCRIBE', *[self.prefix + c for c in channels + ['all']])
        self._sub = conn
        self.up = True
        self._down_until = 0
        log.info('bus: connected to redis at %s', self.url)
        cut = len(self.prefix)
        try:
            while True:
                reply = conn.read_response()
                kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
                channel = reply[1].decode()[cut:]
                if kind == 'message':
                    self.bus.received(json.loads(reply[2]))
                elif kind == 'subscribe':
                    waiting = self._pending.get(channel)
                    if waiting:
                        waiting.pop(0).set()
                        if not waiting:
                            del self._pending[channel]
        finally:
            self.up = False
            self._sub = None
            conn.disconnect()
            # Nobody waits on a confirmation that will not come.
            for events in self._pending.values():
                for event in events:
                    event.set()
            self._pending.clear()


class UdpTransport:
    """Datagrams to every peer; each carries the ids it covers, so a lost one is a gap
    the receivers fill from the database."""

    needs_subscriptions = False

    def __init__(self, bind, peers):
        self.bind = bind
        self.peers = [p for p in peers if p != bind]
        self.bus = None
        self.sock = None
        self._heard = {}
        self._greenlets = []

    @property
    def up(self):
        if self.sock is None:
            return False
        # Every listed peer said hello lately (a broadcast address: anyone did).
        now = time.monotonic()
        anyone = any(now - heard < PEER_SILENCE for heard in self._heard.values())
        return all(anyone if peer[0].endswith('.255') else
                   now - self._heard.get(peer, -PEER_SILENCE) < PEER_SILENCE
                   for peer in self.peers)

    def describe(self):
        return 'udp on {}:{} to {}'.format(self.bind[0], self.bind[1], ', '.join(
            '{}:{}'.format(*p) for p in self.peers) or 'no peers')

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind(self.bind)
        self._greenlets = [gevent.spawn(self._listen), gevent.spawn(self._hello)]

    def stop(self):
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.sock is not None:
            self.sock.close()

    def _send(self, data):
        for peer in self.peers:
            try:
                self.sock.sendto(data, peer)
            except OSError as error:
                log.debug('bus: sending to %s failed: %s', peer, error)

    def send_messages(self, items, ranges):
        node = self.bus.node
        packet, ids = [], []

        def flush():
            if packet:
                self._send(_dumps({'n': node, 'e': packet, 'a': ids[0], 'b': ids[-1]}))
                packet.clear()
                ids.clear()

        for _, event in items:
            msgid = event['i']
            if len(_dumps(event)) > MAX_DATAGRAM - 100:
                event = {'t': 'm', 'n': node, 'i': msgid}  # read from the database
            candidate = _dumps({'n': node, 'e': packet + [event], 'a': (ids or [0])[0],
                                'b': msgid})
            if len(candidate) > MAX_DATAGRAM or (ids and ids[-1] != msgid - 1):
                flush()
            packet.append(event)
            ids.append(msgid)
        flush()

    def send_event(self, event, targets):
        data = _dumps({'n': self.bus.node, 'e': [event]})
        if len(data) > MAX_DATAGRAM:
            log.warning('bus: a %s event is too big for a datagram; not sent', event.get('t'))
            return
        self._send(data)

    def subscribe(self, channels):
        pass  # every node hears everything

    def unsubscribe(self, channels):
        pass

    def wait_subscribed(self, channels, timeout):
        pass

    def _hello(self):
        while True:
            self._send(_dumps({'n': self.bus.node, 'e': []}))
            gevent.sleep(1)

    def _listen(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
                packet = json.loads(data)
            except OSError:
                gevent.sleep(0.1)
                continue
            except ValueError:
                log.warning('bus: an unreadable datagram')
                continue
            if packet.get('n') == self.bus.node:
                continue
            self._heard[peer] = time.monotonic()
            try:
                for event in packet.get('e', ()):
                    self.bus.received(event)
                if 'a' in packet:
                    self.bus.received({'t': 'r', 'n': packet['n'], 'a': packet['a'],
                                       'b': packet['b']})
            except Exception:
                log.exception('bus: handling a datagram failed')


def make_bus(config, db, hub, metrics, encode):
    """The Bus for IMCHAT_BUS, started; None for `none`."""
    kind, params = parse_bus_url(config.get('BUS'), config.get('DATABASE_URL', ''))
    if kind == 'none':
        return None
    node = config.get('NODE_ID') or default_node_id()
    if kind == 'redis':
        transport = RedisTransport(params['url'], params['prefix'])
    else:
        transport = UdpTransport(params['bind'], params['peers'])
    bus = Bus(transport, node, db, hub, metrics, encode, config.get('PRESENCE_TTL', 30))
    bus.start()
    return bus


def prepare_streams(db):
    """Make the message stream's row at start (several nodes may race: one wins)."""
    from imchat.model.stream import ensure_stream

    for attempt in range(3):
        try:
            with db_session:
                ensure_stream(db, 'message', 'message')
            return
        except Exception:
            if attempt == 2:
                raise
            gevent.sleep(0.2)
