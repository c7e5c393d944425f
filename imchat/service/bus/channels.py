"""Which channels this node hears: those of the users it holds connections of (u:<id>)
and of their communities (c:<id>), counted, so a channel is subscribed while one local
connection needs it and dropped after the last. See docs/architecture.md.

Invariant 4 of bus.sequencer rests on `attach` returning only once this node hears the
new connection's channels: the connection reads its backlog after that.
"""
import logging
from typing import Dict, Iterable, List, Optional, Set

from imchat.service.bus.presence import DeploymentPresence
from imchat.service.bus.transport import Transport

log = logging.getLogger(__name__)

# Seconds a node waits for the bus to confirm a new subscription before reading a
# connection's backlog (when the bus is down it does not wait).
SUBSCRIBE_WAIT = 3


def user_channel(user_id: int) -> str:
    return 'u:{}'.format(user_id)


def community_channel(community_id: int) -> str:
    return 'c:{}'.format(community_id)


class Channels:
    def __init__(self, transport: Transport, presence: DeploymentPresence) -> None:
        self.transport = transport
        self.presence = presence
        self._counts: Dict[str, int] = {}            # channel -> local connections needing it
        self._user_communities: Dict[int, Set[int]] = {}  # user -> communities counted
        self._connections: Dict[int, int] = {}       # user -> local connections

    def names(self) -> List[str]:
        """Every channel this node needs now (a transport subscribes to them on connecting)."""
        return list(self._counts)

    def attach(self, user_id: int, community_ids: Iterable[int]) -> None:
        """A connection of `user_id` registered here; returns once this node hears its
        channels (or at once when the bus is down)."""
        count = self._connections.get(user_id, 0)
        self._connections[user_id] = count + 1
        channels = [user_channel(user_id)]
        if count == 0:
            self._user_communities[user_id] = set(community_ids)
            channels += [community_channel(c) for c in community_ids]
            self.presence.arrived(user_id)
        self._subscribe(channels)

    def detach(self, user_id: int) -> None:
        """A connection of `user_id` unregistered here."""
        count = self._connections.get(user_id, 0) - 1
        if count > 0:
            self._connections[user_id] = count
            self._unsubscribe([user_channel(user_id)])
            return
        self._connections.pop(user_id, None)
        channels = [user_channel(user_id)] + [
            community_channel(c) for c in self._user_communities.pop(user_id, ())]
        self._unsubscribe(channels)
        self.presence.left(user_id, lambda: bool(self._connections.get(user_id)))

    def left_community(self, user_id: int, community_id: int) -> None:
        """A user left a community (here or on another node): stop hearing it for them."""
        communities = self._user_communities.get(user_id)
        if communities is not None and community_id in communities:
            communities.discard(community_id)
            self._unsubscribe([community_channel(community_id)])

    def joined(self, user_id: int, community_id: int) -> Optional[bool]:
        """Count a join: None when it changes nothing here (the user has no connection
        here, or it was counted before); else True when this node must now subscribe to
        the community (then `hear` it before delivering what follows), False if not."""
        communities = self._user_communities.get(user_id)
        if communities is None or community_id in communities:
            return None
        communities.add(community_id)
        channel = community_channel(community_id)
        self._counts[channel] = self._counts.get(channel, 0) + 1
        return self._counts[channel] == 1 and self.transport.needs_subscriptions

    def hear(self, community_id: int) -> None:
        """Subscribe to a community's channel and wait (at most SUBSCRIBE_WAIT) until
        this node hears it."""
        channel = community_channel(community_id)
        self.transport.subscribe([channel])
        self.transport.wait_subscribed([channel], SUBSCRIBE_WAIT)

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
