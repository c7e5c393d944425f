"""The one path from a committed batch of messages to the connections that get them.
See docs/architecture.md.

The message writer hands each committed batch, in id order, to one `Delivery`. It
renders and addresses each message once (`envelope`: the bytes and the recipients, by
`protocol.recipients`), then delivers: `LocalDelivery` here, through the hub;
`imchat.service.bus.delivery.BusDelivery` publishes the same envelopes to the other
nodes and delivers them here through the bus's ordering, ending in the same
`LocalDelivery.deliver_here`. The rest of the server never knows whether a message
crossed nodes (python-socketio's pubsub_manager: `_publish` to the others,
`_handle_emit` here).

Events that are never stored (typing, receipts, presence: `push`) and joins (a user's
connections start getting a community's messages) go through the same object, so they
reach every node the same way.
"""
import logging
from typing import Iterable, NamedTuple, Optional, Protocol, Sequence, Tuple

from imchat.protocol import Recipients, encode, recipients
from imchat.transport.codec import OutgoingFrame

log = logging.getLogger(__name__)

# A committed message as the writer hands it over: its message_wire, and the sender's
# connection (service.client.Client, or None) that gets an ack instead of the message.
Committed = Tuple[dict, Optional[object]]


class Envelope(NamedTuple):
    """A committed message on its way: rendered, encoded and addressed once."""
    wire: dict
    frame: OutgoingFrame
    to: Recipients
    origin: Optional[object] = None

    @property
    def msgid(self) -> int:
        return self.wire['msgid']


def envelope(wire: dict, origin: Optional[object] = None) -> Envelope:
    """`wire` encoded once and addressed once, for every connection it goes to."""
    return Envelope(wire, encode(wire), recipients(wire), origin)


class Delivery(Protocol):
    def deliver(self, batch: Sequence[Committed]) -> None:
        """Deliver a committed batch (in id order) to every connection of its recipients
        but the sender's; never raises (the messages are stored: a recipient that missed
        one gets it when it next connects)."""

    def push(self, user_ids: Iterable[int], frame: OutgoingFrame,
             origin: Optional[object] = None) -> None:
        """An event that is never stored, to every connection of `user_ids` but `origin`."""

    def join(self, user_id: int, community_id: int) -> None:
        """A join committed: the user's open connections get the community's messages
        from its place in the id order on."""


class LocalDelivery:
    """One process: delivers through this process's hub."""

    def __init__(self, hub) -> None:
        self.hub = hub

    def deliver(self, batch: Sequence[Committed]) -> None:
        for wire, origin in batch:
            try:
                self.deliver_here(envelope(wire, origin))
            except Exception:
                # Stored all the same: recipients get it when they next connect.
                log.exception('delivering message %s failed', wire['msgid'])

    def deliver_here(self, item: Envelope) -> None:
        """Queue one message for this process's connections of its recipients."""
        to = item.to
        user_ids = to.user_ids or self.hub.online_members(to.community_id)
        self.hub.fan_out(user_ids, item.msgid, item.frame, origin=item.origin)

    def push(self, user_ids: Iterable[int], frame: OutgoingFrame,
             origin: Optional[object] = None) -> None:
        self.hub.push(user_ids, frame, origin=origin)

    def join(self, user_id: int, community_id: int) -> None:
        self.hub.join_community(user_id, community_id)
