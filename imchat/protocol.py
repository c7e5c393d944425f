"""The wire vocabulary of /chat: every command, media and close code, and the frames
the server writes. `docs/protocol.md` is the contract; this module is its one copy in
code, so the model, the services, ctrl and the bus import their words from here and
define none of their own.

A stored message is rendered once (`message_wire`), encoded once (`encode`) and the
same bytes go to every recipient; `recipients` is the one rule for who they are.
"""
from typing import List, NamedTuple, Optional

import orjson

from imchat.transport.codec import (CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_SERVER_ERROR,
                                    CLOSE_TRY_AGAIN_LATER, OutgoingFrame)

# cmd, as on the wire and in `message.cmd`.
CMD_HEART = 0
CMD_ACK = 1
CMD_SINGLE_MSG = 10
CMD_ROOM_MSG = 11
# Conversation events (cmd 12-15); only a recall (14) is stored.
CMD_READ = 12
CMD_TYPING = 13
CMD_RECALL = 14
CMD_PRESENCE = 15
# Tells a (re)connecting client its replay was cut short: the messages with
# `after` < msgid < `before` were not sent; it reads them with /chat/history.
CMD_BACKLOG_SKIPPED = 16
# A contact event (server only): a friend request, an acceptance, a kick, a role change...
# reaching the people it concerns (docs/protocol.md, "Contacts and safety").
CMD_CONTACT = 17
CONTACT_EVENTS = ('request', 'accepted', 'removed', 'invited', 'joinrequest', 'approved',
                  'rejected', 'kicked', 'role', 'muted', 'banned',
                  # my own mute of a conversation (/chat/mute), to my other devices
                  'mute',
                  # a user's profile (dstid: the user) or a community's name or picture
                  # changed: the lists showing them load again.
                  'profile', 'community')
# Richer messages (docs/protocol.md, "Richer messages"): both stored in the stream like
# a recall, their `media` column holding the target message's cmd, `amount` its id.
CMD_EDIT = 18
CMD_REACTION = 19
# Stored events about another message (not messages themselves): history leaves them
# out, the backlog and the bus carry them to the target's conversation.
STORED_EVENTS = (CMD_RECALL, CMD_EDIT, CMD_REACTION)
# The client's page is shown or hidden (`visible`: 1 or 0): one whose connections are
# all hidden gets Web Push notifications (docs/push.md).
CMD_VISIBILITY = 20

# media of a message (cmd 10 and 11).
MEDIA_RECALLED = 0  # a recalled message: its body is erased, its row stays in the stream
MEDIA_TEXT = 1
MEDIA_NEWS = 2
MEDIA_VOICE = 3
MEDIA_IMAGE = 4
MEDIA_RED_PACKET = 5
MEDIA_EMOJI = 6
MEDIA_LINK = 7
MEDIA_VIDEO = 8
MEDIA_CONTACT = 9
MEDIA_FILE = 10  # `url`, `content` the file's name (display text only), `amount` its size
MEDIA_CUSTOM = 100

# Close codes of the application (RFC 6455 keeps 4000-4999 for it); the standard ones
# (1001 going away, 1008 policy, 1011 server error, 1013 try again later) are the
# codec's, imported above so the server's callers find every code here.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
# This user opened more connections than IMCHAT_WS_PER_USER: the oldest is closed.
CLOSE_TOO_MANY = 4429

__all__ = ['CLOSE_GOING_AWAY', 'CLOSE_POLICY', 'CLOSE_SERVER_ERROR', 'CLOSE_TRY_AGAIN_LATER']

# The WebSocket subprotocol of /chat. A client may offer its token as a second one,
# `imchat.token.<token>`, beside it: a token in the URL lands in proxies' logs (nginx's
# error log quotes the request line), a header does not. The server answers `imchat`.
WS_SUBPROTOCOL = 'imchat'
WS_TOKEN_SUBPROTOCOL = 'imchat.token.'


def offered_subprotocols(header: Optional[str]) -> List[str]:
    """The subprotocols a `Sec-WebSocket-Protocol` header offers, in order."""
    return [p.strip() for p in (header or '').split(',') if p.strip()]


def subprotocol_token(header: Optional[str]) -> Optional[str]:
    """The token offered as `imchat.token.<token>` in a `Sec-WebSocket-Protocol`
    header, or None."""
    for offered in offered_subprotocols(header):
        if offered.startswith(WS_TOKEN_SUBPROTOCOL):
            return offered[len(WS_TOKEN_SUBPROTOCOL):] or None
    return None


def encode(wire: dict) -> OutgoingFrame:
    """A frame's bytes, made once for every connection it goes to."""
    # orjson writes the same bytes as json.dumps(wire, ensure_ascii=False,
    # separators=(',', ':')).encode('utf-8'), several times faster.
    return OutgoingFrame(orjson.dumps(wire))


def message_wire(msgid, userid, cmd, dstid, media, content, pic, url, memo, amount,
                 createat) -> dict:
    """The stored message as recipients see it; empty body fields are left out. The
    fields of richer messages (an edit's `editedat`, `replyto`, `forwarded`, `mentions`)
    are added by `rich_fields`, so a plain message costs nothing more."""
    if cmd >= CMD_RECALL and cmd in STORED_EVENTS:
        return _event_wire(msgid, userid, cmd, dstid, media, content, pic, memo, amount,
                           createat)
    if media == MEDIA_RECALLED:
        return {'msgid': msgid, 'userid': userid, 'cmd': cmd, 'dstid': dstid,
                'media': media, 'createat': createat, 'recalled': 1}
    wire = {'msgid': msgid, 'userid': userid, 'cmd': cmd, 'dstid': dstid,
            'media': media, 'createat': createat}
    for name, value in (('content', content), ('pic', pic), ('url', url),
                        ('memo', memo), ('amount', amount)):
        if value:
            wire[name] = value
    return wire


def _event_wire(msgid, userid, cmd, dstid, media, content, pic, memo, amount, createat):
    # An event row: `media` holds its target's cmd, `amount` the target's id.
    wire = {'msgid': msgid, 'userid': userid, 'cmd': cmd, 'target': media, 'dstid': dstid}
    if cmd == CMD_RECALL:
        wire['recalledmsgid'] = amount
    elif cmd == CMD_EDIT:
        wire['editedmsgid'] = amount
        wire['content'] = content
    else:
        # A reaction: `content` the emoji, `memo` '1' set or '0' removed, `pic` the
        # emoji it replaced (one per person), so a client can move its count.
        wire['reactedmsgid'] = amount
        wire['emoji'] = content
        wire['on'] = 1 if memo == '1' else 0
        if pic:
            wire['replaced'] = pic
    wire['createat'] = createat
    return wire


def rich_fields(wire: dict, editedat=0, replyto=0, forwarded=0, mentions='') -> dict:
    """Add the richer-message columns of a stored message to its wire (in place), each
    only when set. `mentions` as stored: ids joined by commas, `-1` for everyone."""
    if editedat and wire.get('media'):
        wire['editedat'] = editedat
    if replyto:
        wire['replyto'] = replyto
    if forwarded:
        wire['forwarded'] = 1
    if mentions:
        wire['mentions'] = [int(part) for part in mentions.split(',')]
    return wire


def reply_quote(msgid, userid, media, content) -> dict:
    """What a reply carries of the message it answers: enough to draw it, no lookup."""
    quote = {'msgid': msgid, 'userid': userid, 'media': media,
             'content': (content or '')[:REPLY_QUOTE_CHARS], 'recalled': 0}
    if media == MEDIA_RECALLED:
        quote['recalled'] = 1
    return quote


# Characters of the answered message a reply quotes.
REPLY_QUOTE_CHARS = 100


class Recipients(NamedTuple):
    """Who a stored message or event goes to: both people of a 1:1 conversation, or the
    members of a community (found where connections are held, so only its id here)."""
    user_ids: tuple
    community_id: int


def recipients(wire: dict) -> Recipients:
    """The one rule for whom `wire` (a message_wire) is delivered to. An event (a
    recall) names its conversation's kind in `target`; a message, in `cmd`."""
    if wire.get('target', wire['cmd']) == CMD_SINGLE_MSG:
        return Recipients((wire['dstid'], wire['userid']), 0)
    return Recipients((), wire['dstid'])


def ack_ok(client_id, stored) -> OutgoingFrame:
    """The acknowledgement of a stored frame: its msgid and time (`stored`)."""
    return encode({'cmd': CMD_ACK, 'id': client_id, 'msgid': stored.msgid,
                   'createat': stored.createat, 'code': 0})


def ack_done(client_id) -> OutgoingFrame:
    """The acknowledgement of an event frame that stores nothing (read, typing)."""
    return encode({'cmd': CMD_ACK, 'id': client_id, 'code': 0})


def ack_refused(client_id, msg: str, reason: str = None) -> OutgoingFrame:
    """A refusal: `msg` for people, `reason` for programs (docs/protocol.md, "Error
    reasons"); it echoes the client's id when there was one."""
    wire = {'cmd': CMD_ACK, 'code': -1, 'msg': msg}
    if reason is not None:
        wire['reason'] = reason
    if client_id is not None:
        wire['id'] = client_id
    return encode(wire)


def contact_event(event: str, userid: int, dstid: int, **details) -> OutgoingFrame:
    """The cmd 17 frame: `userid` (who acted) did `event` concerning `dstid` (a user or a
    community); `details` add what the receiver needs to show it (a greeting, a role)."""
    if event not in CONTACT_EVENTS:
        raise ValueError('not a contact event: {!r}'.format(event))
    wire = {'cmd': CMD_CONTACT, 'event': event, 'userid': userid, 'dstid': dstid}
    wire.update(details)
    return encode(wire)


def backlog_skipped(since: int, replay_after: int) -> OutgoingFrame:
    """The cmd 16 frame: the messages after `since` up to `replay_after` were not replayed."""
    return encode({'cmd': CMD_BACKLOG_SKIPPED, 'after': since, 'before': replay_after + 1})
