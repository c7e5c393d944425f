"""One node's end of the bus that joins several imchat processes into one deployment,
and `make_bus`, which builds it from IMCHAT_BUS (bus.urls). See docs/architecture.md
and docs/scaling.md.

The bus is a thin transport behind the same seams one process has: `delivery`
(service.delivery.Delivery: after a batch of messages commits, the writer hands it
over, and it is published to the other nodes and delivered here through the same
ordering as what they send, bus.sequencer) and `presence` (service.presence.Presence,
across nodes). The rest of the server never knows whether a message crossed nodes.

The pieces: bus.kinds (what nodes say), bus.redis and bus.udp (moving the bytes),
bus.channels (what this node hears), bus.sequencer and bus.gaps (order and no loss),
bus.delivery, bus.presence.
"""
import logging
import secrets
from typing import Iterable, List, Optional

import gevent
from pony.orm import db_session

from imchat.model.stream import ensure_stream
from imchat.service.bus import kinds
from imchat.service.bus.channels import Channels
from imchat.service.bus.delivery import BusDelivery
from imchat.service.bus.faults import Dependency, Dropped
from imchat.service.bus.gaps import GapFiller, stream_position
from imchat.service.bus.presence import DeploymentPresence
from imchat.service.bus.redis import RedisTransport
from imchat.service.bus.transport import Transport, announce
from imchat.service.bus.udp import UdpTransport
from imchat.service.bus.urls import BusURLError, default_node_id, parse_bus_url
from imchat.service.delivery import LocalDelivery
from imchat.util.signal import Signal

log = logging.getLogger(__name__)

# The relayed event that travels as its own kind (kinds.Logout), as it always has.
LOGOUT = 'logout'
# The `stream` row whose position is the deployment's id: a random number the database
# gets once, when the first node starts on it (prepare_streams). Nodes on one database
# share it; another database (another deployment on the same Redis) has its own.
DEPLOYMENT = 'deployment'
# Seconds a gap may hold delivery back before /healthz reports the bus stalled (gaps
# are filled after bus.gaps.GAP_WAIT, from the database).
STALLED_AFTER = 10
# Shortest IMCHAT_BUS_SECRET accepted: HMAC-SHA256's own key size.
SECRET_MIN_BYTES = 32


class Bus:
    """One node's end of the bus; `transport` moves the bytes between nodes."""

    def __init__(self, transport: Transport, node: str, db, hub, metrics,
                 presence_ttl: float = 30, dropped: Optional[Dropped] = None) -> None:
        self.transport = transport
        self.node = node
        self.db = db
        self.presence = DeploymentPresence(db, hub, node, presence_ttl)
        self.channels = Channels(transport, self.presence)
        # Publishing failing (Redis down) is one line when it starts and one when it ends.
        self.sending = Dependency('the bus')
        self.delivery = BusDelivery(LocalDelivery(hub), transport, self.channels, db, metrics,
                                    node, stream_position(db), dropped or Dropped(metrics),
                                    self.sending)
        self.gaps = GapFiller(db, self.delivery.sequencer, transport)
        self._relayed = {}

    def start(self) -> None:
        self.transport.start(self.received, self.channels.names)
        self.gaps.start()
        self.presence.start()
        log.info('bus: %s as node %s', self.transport.describe(), self.node)

    def stop(self) -> None:
        self.gaps.stop()
        self.transport.stop()
        self.presence.stop()

    def status(self) -> str:
        """'up'; 'down' when the other nodes cannot be reached; 'stalled' when this
        node's delivery has waited on a gap longer than filling one takes (it cannot read
        the database, or something holds it back): /healthz must not say up then."""
        if not self.transport.up:
            return 'down'
        return 'stalled' if self.delivery.sequencer.gap_age() > STALLED_AFTER else 'up'

    # -- the hub's connections: which channels this node hears ---------------------

    def attach(self, user_id: int, community_ids: Iterable[int]) -> None:
        """A connection registered here; returns once this node hears its channels."""
        self.channels.attach(user_id, community_ids)

    def detach(self, user_id: int) -> None:
        self.channels.detach(user_id)

    def left_community(self, user_id: int, community_id: int) -> None:
        """A leave or kick (raised here or relayed): stop hearing the community for them."""
        self.channels.left_community(user_id, community_id)

    # -- named service events, carried to every node ---------------------------------

    def relay(self, event: str, signal: Signal) -> None:
        """Each emit of `signal` here is raised on every other node too (there with
        `emit_relayed`, so it is not carried back)."""
        self._relayed[event] = signal
        signal.connect(lambda *args: self._announce_event(event, args), relayed=False)

    def _announce_event(self, event, args):
        kind = (kinds.Logout(self.node, args[0]) if event == LOGOUT else
                kinds.Relay(self.node, event, list(args)))
        announce(self.transport, kind, self.sending)

    def _raise_relayed(self, event, args):
        signal = self._relayed.get(event)
        if signal is not None:
            signal.emit_relayed(*args)

    # -- receiving (the transport's listener greenlet) -------------------------------

    def received(self, line: dict) -> None:
        """One line from another node (bus.kinds)."""
        if line.get('n') == self.node:
            return
        kind = kinds.parse(line)
        delivery = self.delivery
        if isinstance(kind, kinds.Message):
            delivery.received_message(kind)
        elif isinstance(kind, kinds.Range):
            delivery.received_range(kind)
        elif isinstance(kind, kinds.Logout):
            self._raise_relayed(LOGOUT, [kind.token_key])
        elif isinstance(kind, kinds.Join):
            delivery.received_join(kind)
        elif isinstance(kind, kinds.Relay):
            self._raise_relayed(kind.event, kind.args)
        elif isinstance(kind, kinds.Push):
            delivery.received_push(kind)


def make_bus(config, db, hub, metrics) -> Optional[Bus]:
    """The Bus for IMCHAT_BUS, started; None for `none`. Raises BusURLError."""
    kind, params = parse_bus_url(config.get('BUS'))
    if kind == 'none':
        return None
    node = config.get('NODE_ID') or default_node_id()
    dropped = Dropped(metrics)  # one count and one log line a minute for the whole bus
    if kind == 'redis':
        prefix = params['prefix'] or 'imchat:{:x}:'.format(deployment_id(db))
        transport = RedisTransport(params['url'], prefix)
    else:
        secret = (config.get('BUS_SECRET') or '').encode('utf-8')
        if len(secret) < SECRET_MIN_BYTES:
            raise BusURLError('a udp bus needs IMCHAT_BUS_SECRET, the same on every node, '
                              'of at least {} bytes (e.g. `openssl rand -hex 32`)'
                              .format(SECRET_MIN_BYTES))
        transport = UdpTransport(params['bind'], params['peers'], node, secret, dropped)
    bus = Bus(transport, node, db, hub, metrics, config.get('PRESENCE_TTL', 30), dropped)
    bus.start()
    return bus


def deployment_id(db) -> int:
    """The id the database made for its deployment (prepare_streams made it)."""
    with db_session:
        return db.Stream[DEPLOYMENT].pos


def prepare_streams(db) -> None:
    """Make the message stream's row, and the deployment's id, at start (several nodes
    may race: one wins)."""
    for attempt in range(3):
        try:
            with db_session:
                ensure_stream(db, 'message', 'message')
                if db.Stream.get(name=DEPLOYMENT) is None:
                    db.Stream(name=DEPLOYMENT, pos=secrets.randbits(62))
            return
        except Exception:
            if attempt == 2:
                raise
            gevent.sleep(0.2)


__all__: List[str] = ['Bus', 'make_bus', 'prepare_streams']
