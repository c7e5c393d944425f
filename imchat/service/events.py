"""Conversation events that are never stored: read positions going out as receipts
(cmd 12), typing (cmd 13), presence (cmd 15) and a page's visibility (cmd 20, told to
Web Push by the `visibility_changed` signal). Their frames are read by
service.event_frame; a recall (cmd 14) is stored through the message writer.
See docs/architecture.md.

Typing and presence cost nothing when nobody listens: they go only to connections
that are open (Delivery.push, on every node), and typing is checked against a rate
limit and the cached friendship before anything else.
"""
import logging
import time

import gevent

from typing import Optional

from imchat.protocol import (CMD_PRESENCE, CMD_READ, CMD_SINGLE_MSG, CMD_TYPING,
                             CMD_VISIBILITY, ack_done, ack_refused, contact_event, encode)
from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.service.delivery import Delivery
from imchat.service.errors import Refusal, ServiceError
from imchat.service.event_frame import EventFrame
from imchat.service.permissions import Permissions
from imchat.service.presence import Presence
from imchat.transport.codec import OutgoingFrame
from imchat.util.signal import Signal

log = logging.getLogger(__name__)

# docs/protocol.md: a sender's typing reaches a friend at most once every 2 s.
TYPING_INTERVAL = 2.0
# Typing times remembered before the stale ones are dropped.
TYPING_MEMORY = 10000


class EventService:
    def __init__(self, hub, delivery: Delivery, presence: Presence, conversations,
                 permissions: Permissions, contacts, presence_grace: float) -> None:
        # The hub for who is connected here (and whether this node is stopping);
        # `delivery` sends the events, here and on every node.
        self.hub = hub
        self.delivery = delivery
        # Who is online: this process's hub, or the whole deployment's with a bus.
        self.presence = presence
        self.conversations = conversations
        self.permissions = permissions
        self.contacts = contacts
        self.presence_grace = presence_grace
        self._typing_at = {}
        self._going_offline = {}
        # (client, visible): a connection's page was shown or hidden (cmd 20).
        self.visibility_changed = Signal('visibility_changed')
        # (user id, the login's token key, target, dstid, msgid): a read moved a read
        # position on, from that login.
        self.conversation_read = Signal('conversation_read')

    def handle(self, client, frame: EventFrame) -> Optional[OutgoingFrame]:
        """Act on a read, typing or visibility frame from `client`; returns the ack to
        send, if any."""
        try:
            if frame.cmd == CMD_READ:
                self._read(client, frame)
            elif frame.cmd == CMD_VISIBILITY:
                self.visibility_changed.emit(client, frame.visible)
            else:
                refusal = self._typing(client.user_id, frame.dstid)
                if refusal:
                    return ack_refused(frame.client_id, refusal, refusal.reason)
        except ServiceError as error:
            return ack_refused(frame.client_id, error.msg, error.reason)
        except Exception as error:
            if unavailable_cause(error) is None and not pool_exhausted(error):
                raise
            return ack_refused(frame.client_id, 'the database is unavailable, '
                                                'send it again shortly', 'unavailable.database')
        return ack_done(frame.client_id) if frame.client_id is not None else None

    def _read(self, client, frame):
        user_id = client.user_id
        position = self.conversations.mark_read(user_id, frame.target, frame.dstid, frame.msgid)
        if position is None:
            return
        self.conversation_read.emit(user_id, client.token_key, frame.target, frame.dstid,
                                    position)
        receivers = (user_id, frame.dstid) if frame.target == CMD_SINGLE_MSG else (user_id,)
        self.delivery.push(receivers, encode({'cmd': CMD_READ, 'userid': user_id,
                                         'target': frame.target, 'dstid': frame.dstid,
                                              'msgid': position}), origin=client)

    def _typing(self, user_id, friend_id):
        now = time.monotonic()
        key = (user_id, friend_id)
        if now - self._typing_at.get(key, -TYPING_INTERVAL) < TYPING_INTERVAL:
            return None  # dropped: one every TYPING_INTERVAL is enough
        if len(self._typing_at) >= TYPING_MEMORY:
            self._typing_at = {k: at for k, at in self._typing_at.items()
                               if now - at < TYPING_INTERVAL}
        self._typing_at[key] = now
        if not self.permissions.may_write_to(user_id, CMD_SINGLE_MSG, friend_id):
            return Refusal('user {} is not your friend'.format(friend_id), 'contact.not_friends')
        self.delivery.push((friend_id,), encode({'cmd': CMD_TYPING, 'userid': user_id,
                                                 'dstid': friend_id}))
        return None

    # -- presence ------------------------------------------------------------------

    def profile_changed(self, user_id: int) -> None:
        """My friends, everyone who shares a community with me and my own devices see
        my new name or picture (cmd 17 'profile'), without a reload. Sent after the
        change committed; a failure to tell is logged, never a refusal."""
        try:
            people = set(self.contacts.friend_ids(user_id))
            people.update(self.contacts.co_member_ids(user_id))
            people.add(user_id)
            self.delivery.push(sorted(people), contact_event('profile', user_id, user_id))
        except Exception:
            log.exception('could not tell who sees the profile of user %s', user_id)

    def presence_changed(self, user_id: int, online: bool) -> None:
        """The hub saw a user's first connection open or last one close. Going offline
        is announced after the grace period, and not at all if they are back by then."""
        if online:
            leaving = self._going_offline.pop(user_id, None)
            if leaving is not None:
                leaving.kill(block=False)
                return  # back within the grace period: friends never saw them go
            gevent.spawn(self._announce, user_id, 1)
        elif self.presence_grace:
            self._going_offline[user_id] = gevent.spawn_later(
                self.presence_grace, self._went_offline, user_id)
        else:
            gevent.spawn(self._announce, user_id, 0)

    def _went_offline(self, user_id):
        self._going_offline.pop(user_id, None)
        if not self.presence.is_online(user_id):
            self._announce(user_id, 0)

    def _announce(self, user_id, online):
        hub = self.hub
        if not hub.accepting or (self.presence.local and len(hub.users) <= online):
            return  # shutting down, or nobody else is connected to hear it
        try:
            friend_ids = self.presence.online_among(self.contacts.friend_ids(user_id))
        except Exception as error:
            if unavailable_cause(error) is None and not pool_exhausted(error):
                log.exception('could not announce the presence of user %s', user_id)
            return
        self.delivery.push(friend_ids, encode({'cmd': CMD_PRESENCE, 'userid': user_id,
                                               'online': online}))
