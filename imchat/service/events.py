"""Conversation events that are never stored: read positions going out as receipts
(cmd 12), typing (cmd 13) and presence (cmd 15); the parsing of every client event
frame, recall (cmd 14) included, which is stored through the message writer; and
unfriending, leaving and kicking taking effect on open connections.

Typing and presence cost nothing when nobody listens: they go only to connections
that are open (Hub.push), and typing is checked against a rate limit and the cached
friendship before anything else.
"""
import logging
import time

import gevent

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.protocol import (CMD_PRESENCE, CMD_READ, CMD_RECALL, CMD_ROOM_MSG, CMD_SINGLE_MSG,
                             CMD_TYPING, ack_done, ack_refused, encode)
from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.service.errors import ServiceError
from imchat.service.frame import FrameError, _int_field

log = logging.getLogger('imchat.chat')

# Event cmds a client may send; read and typing are answered at once, never stored.
EVENT_CMDS = (CMD_READ, CMD_TYPING, CMD_RECALL, CMD_PRESENCE)
UNSTORED_CMDS = (CMD_READ, CMD_TYPING)
# docs/protocol.md: a sender's typing reaches a friend at most once every 2 s.
TYPING_INTERVAL = 2.0
# Typing times remembered before the stale ones are dropped.
TYPING_MEMORY = 10000


class EventFrame:
    __slots__ = ('client_id', 'cmd', 'target', 'dstid', 'msgid')
    # A recall is stored as a message row with no body (see service.recall).
    content = pic = url = memo = ''

    def __init__(self, client_id, cmd, target=0, dstid=0, msgid=0):
        self.client_id = client_id
        self.cmd = cmd
        self.target = target
        self.dstid = dstid
        self.msgid = msgid

    @property
    def media(self):
        return self.target

    @property
    def amount(self):
        return self.msgid


def parse_event(raw, cmd, client_id):
    """An EventFrame from a client's cmd 12-15 frame. Raises FrameError."""
    if cmd == CMD_PRESENCE:
        raise FrameError('cmd 15 (presence) is sent by the server only', client_id)
    if cmd == CMD_RECALL:
        return EventFrame(client_id, cmd, msgid=_int_field(raw, 'msgid', client_id, minimum=1))
    if cmd == CMD_TYPING:
        return EventFrame(client_id, cmd, CMD_SINGLE_MSG,
                          _int_field(raw, 'dstid', client_id, minimum=1))
    target = _int_field(raw, 'target', client_id, minimum=0)
    if target not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        raise FrameError('target must be 10 (a user) or 11 (a community)', client_id)
    return EventFrame(client_id, cmd, target, _int_field(raw, 'dstid', client_id, minimum=1),
                      _int_field(raw, 'msgid', client_id, minimum=1))


class EventService:
    def __init__(self, hub, conversations, messages, contacts, presence_grace):
        self.hub = hub
        self.conversations = conversations
        self.messages = messages
        self.contacts = contacts
        self.presence_grace = presence_grace
        self._typing_at = {}
        self._going_offline = {}
        # Who is online: this process's hub, or the whole deployment's when a bus joins
        # several nodes (Services replaces these two with the bus's).
        self.is_online = hub.is_online
        self.online_among = lambda user_ids: [u for u in user_ids if hub.is_online(u)]
        self.local_only = True
        hub.presence_listeners.append(self.presence_changed)
        contacts.unfriend_listeners.append(self.unfriended)
        contacts.leave_listeners.append(self.left_community)

    def unfriended(self, user_id, friend_id):
        """Neither may send to the other from now on, open connections included."""
        self.messages.forget_permission(CONTACT_FRIEND, user_id, friend_id)
        self.messages.forget_permission(CONTACT_FRIEND, friend_id, user_id)

    def left_community(self, user_id, community_id):
        """A member left or was kicked: nothing more from or to the group, at once."""
        self.messages.forget_permission(CONTACT_COMMUNITY, user_id, community_id)
        self.hub.leave_community(user_id, community_id)

    def handle(self, client, frame):
        """Act on a read or typing frame from `client`; returns the ack to send, if any."""
        try:
            if frame.cmd == CMD_READ:
                self._read(client, frame)
            else:
                refusal = self._typing(client.user_id, frame.dstid)
                if refusal:
                    return ack_refused(frame.client_id, refusal)
        except ServiceError as error:
            return ack_refused(frame.client_id, error.msg)
        except Exception as error:
            if unavailable_cause(error) is None and not pool_exhausted(error):
                raise
            return ack_refused(frame.client_id, 'the database is unavailable, '
                                                'send it again shortly')
        return ack_done(frame.client_id) if frame.client_id is not None else None

    def _read(self, client, frame):
        user_id = client.user_id
        position = self.conversations.mark_read(user_id, frame.target, frame.dstid, frame.msgid)
        if position is None:
            return
        receivers = (user_id, frame.dstid) if frame.target == CMD_SINGLE_MSG else (user_id,)
        self.hub.push(receivers, encode({'cmd': CMD_READ, 'userid': user_id,
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
        if not self.messages.may_write_to(user_id, CMD_SINGLE_MSG, friend_id):
            return 'user {} is not your friend'.format(friend_id)
        self.hub.push((friend_id,), encode({'cmd': CMD_TYPING, 'userid': user_id,
                                            'dstid': friend_id}))
        return None

    # -- presence ------------------------------------------------------------------

    def presence_changed(self, user_id, online):
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
        if not self.is_online(user_id):
            self._announce(user_id, 0)

    def _announce(self, user_id, online):
        hub = self.hub
        if not hub.accepting or (self.local_only and len(hub.users) <= online):
            return  # shutting down, or nobody else is connected to hear it
        try:
            friend_ids = self.online_among(self.contacts.friend_ids(user_id))
        except Exception as error:
            if unavailable_cause(error) is None and not pool_exhausted(error):
                log.exception('could not announce the presence of user %s', user_id)
            return
        hub.push(friend_ids, encode({'cmd': CMD_PRESENCE, 'userid': user_id,
                                     'online': online}))
