"""Delivery with a bus: the service.delivery.Delivery seam for several nodes. See
docs/architecture.md.

A committed batch is addressed once (service.delivery.envelope), held here in the
sequencer, published to the channels of its recipients and covered by its id ranges;
the sequencer then releases it here, in id order with what the other nodes publish,
to the same `LocalDelivery.deliver_here` one process uses. What other nodes publish
comes in through `received_*`, is addressed once on arrival, and takes the same path.
Joins take an id (ContactService), so they travel in the id order too.
"""
import logging
from typing import Iterable, Optional, Sequence, Union

import gevent
from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.protocol import CMD_ROOM_MSG, STORED_EVENTS
from imchat.service.bus import kinds
from imchat.service.bus.channels import Channels, community_channel, user_channel
from imchat.service.bus.faults import Dependency, Dropped
from imchat.service.bus.gaps import JoinItem, read_message, stream_position
from imchat.service.bus.sequencer import Sequencer
from imchat.service.bus.transport import Transport, announce
from imchat.service.delivery import Committed, Envelope, LocalDelivery, envelope
from imchat.service.rich_read import add_quotes
from imchat.transport.codec import OutgoingFrame

log = logging.getLogger(__name__)


class BusDelivery:
    def __init__(self, here: LocalDelivery, transport: Transport, channels: Channels, db,
                 metrics, node: str, start: int, dropped: Dropped,
                 sending: Dependency) -> None:
        self.here = here
        self.transport = transport
        self.channels = channels
        self.db = db
        self.metrics = metrics
        self.node = node
        self.sequencer = Sequencer(start, self._release)
        self.dropped = dropped
        self.sending = sending

    # -- from this node ------------------------------------------------------------

    def deliver(self, batch: Sequence[Committed]) -> None:
        """Publish a committed batch to the other nodes, then deliver it here (in id
        order with what they send)."""
        try:
            self._publish(sorted((envelope(wire, origin) for wire, origin in batch),
                                 key=lambda item: item.msgid))
        except Exception:
            # Stored all the same: recipients get it when they next connect.
            log.exception('delivering %d messages failed', len(batch))

    def _publish(self, items):
        if not items:
            return
        messages, ranges = [], []
        for item in items:
            msgid = item.msgid
            if ranges and ranges[-1][1] == msgid - 1:
                ranges[-1][1] = msgid
            else:
                ranges.append([msgid, msgid])
            to = item.to
            targets = ([user_channel(user_id) for user_id in to.user_ids]
                       or [community_channel(to.community_id)])
            messages.append((targets, kinds.Message(self.node, msgid, item.wire)))
        # Held here first: a gap filled from the database while the send is slow still
        # knows each message's origin (the sender's connection does not get it back).
        seq = self.sequencer
        for item in items:
            seq.hold(item.msgid, item, preferred=item.origin is not None)
        try:
            self.transport.send_messages(messages, [kinds.Range(self.node, first, last)
                                                    for first, last in ranges])
        except Exception as error:
            # Stored all the same: the other nodes fill the gap from the database.
            self.sending.failed('publishing {} messages'.format(len(messages)), error)
        else:
            self.sending.answered()
        for first, last in ranges:
            seq.cover(first, last)

    def push(self, user_ids: Iterable[int], frame: OutgoingFrame,
             origin: Optional[object] = None) -> None:
        """Ephemeral frames (typing, presence, receipts: never stored) reach the users'
        connections here and on every other node."""
        user_ids = list(user_ids)
        self.here.push(user_ids, frame, origin=origin)
        announce(self.transport, kinds.Push(self.node, user_ids,
                                            bytes(frame.payload).decode('utf-8')),
                 self.sending, [user_channel(u) for u in user_ids])

    def join(self, user_id: int, community_id: int) -> None:
        """A user joined a community (committed): every node holding the user's
        connections applies it at its place in the id order (the join took an id)."""
        with db_session:
            row = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                      dstid=community_id)
            position = row.joined_msgid if row is not None else 0
        if not position:
            return
        self.sequencer.hold(position, JoinItem(position, user_id, community_id))
        try:
            self.transport.send_messages(
                [([user_channel(user_id)], kinds.Join(self.node, position, user_id,
                                                      community_id))],
                [kinds.Range(self.node, position, position)])
        except Exception as error:
            self.sending.failed('publishing a join', error)
        self.sequencer.cover(position, position)

    # -- from the other nodes (the transport's listener greenlet) ------------------

    def _committed(self, first, last) -> bool:
        """Whether first..last are ids the stream has handed out: no other node can
        publish an id before committing it, so anything above the stream's position is
        forged (a range up to 2**62 would otherwise hold every later message back).
        The sequencer's `top` is a known position (every id that raised it passed
        here, or came from this node or the database); past it, the database says."""
        if type(first) is not int or type(last) is not int or not 0 < first <= last:
            return False
        seq = self.sequencer
        if last <= seq.top:
            return True
        try:
            seq.saw_position(stream_position(self.db))
        except Exception:
            return False  # unverifiable now; the gap filler reads it from the database
        return last <= seq.top

    def received_message(self, message: kinds.Message) -> None:
        wire = message.wire
        if wire is not None and (not isinstance(wire, dict) or wire.get('msgid') != message.msgid):
            self.dropped.drop('unreadable', message.node)
            return
        if not self._committed(message.msgid, message.msgid):
            self.dropped.drop('beyond_stream', message.node)
            return
        self.metrics.inc('imchat_bus_messages_received_total')
        if wire is None:  # a reference: too big for a datagram
            if message.msgid <= self.sequencer.done:
                return
            try:
                wire = read_message(self.db, message.msgid)
            except Exception:
                return  # the database is not answering: the gap filler reads it later
            if wire is None:
                return
        self.sequencer.hold(wire['msgid'], envelope(wire))

    def received_range(self, covered: kinds.Range) -> None:
        if not self._committed(covered.first, covered.last):
            self.dropped.drop('beyond_stream', covered.node)
            return
        self.sequencer.cover(covered.first, covered.last)

    def received_join(self, join: kinds.Join) -> None:
        if not self._committed(join.msgid, join.msgid):
            self.dropped.drop('beyond_stream', join.node)
            return
        self.sequencer.hold(join.msgid, JoinItem(join.msgid, join.user_id, join.community_id))

    def received_push(self, push: kinds.Push) -> None:
        self.here.push(push.user_ids, OutgoingFrame(push.frame.encode('utf-8')))

    # -- released by the sequencer, in id order ------------------------------------

    def _release(self, item: Union[Envelope, JoinItem]) -> bool:
        """Deliver one released item here; True asks the sequencer to wait."""
        if isinstance(item, JoinItem):
            return self._apply_join(*item)
        self.here.deliver_here(item)
        return False

    def _apply_join(self, position, user_id, community_id):
        """At the join's place in the id order: the user's connections here get the
        community's messages from now on. When this node did not hear the community
        yet, it waits (paused) until it does, and reads what was published before that
        from the database, so the joiner misses nothing after the join."""
        must_hear = self.channels.joined(user_id, community_id)
        if must_hear is None:
            return False
        self.here.join(user_id, community_id)
        if not must_hear:
            return False
        # In its own greenlet: nothing the sequencer calls may yield.
        gevent.spawn(self._finish_join, position, community_id)
        return True

    def _finish_join(self, position, community_id):
        rows = []
        try:
            self.channels.hear(community_id)
            with db_session:
                found = select(m for m in self.db.Message if m.dstid == community_id
                               and m.id > position and (m.cmd == CMD_ROOM_MSG or (
                                   m.cmd in STORED_EVENTS and m.media == CMD_ROOM_MSG)))[:]
                rows = [(wire['msgid'], wire)
                        for wire in add_quotes(self.db, [m.to_wire() for m in found])]
        except Exception:
            log.exception('bus: reading community %s after a join failed', community_id)
        self.sequencer.resume([(msgid, envelope(wire)) for msgid, wire in rows])
