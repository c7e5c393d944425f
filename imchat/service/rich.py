"""The rules of richer messages (docs/protocol.md, "Richer messages"), checked by the
message writer inside its transaction, as a recall is (service.recall):

- an edit (cmd 18) rewrites my own text message within IMCHAT_EDIT_SECONDS and is
  stored as an event row (`media` the target's cmd, `amount` its id, `content` the new
  text); the message keeps only the latest text and its `editedat`;
- a reaction (cmd 19) sets or removes my one emoji on a message I can read (a
  `reaction` row each), stored as an event row (`content` the emoji, `memo` '1' or '0',
  `pic` the emoji it replaced);
- a message's `forward` copies a message I can read (media and body, the same file
  URLs: files are reused, not copied) and marks it `forwarded`; `replyto` names a
  message of the same conversation and gives recipients its quote; `mentions` keeps
  the community's members among the ids, and `-1` (everyone) only from its owner or
  an admin (issue 22's roles).

Each function returns None (the frame may be stored, and the rows it changes are
changed) or a Refusal with its reason.
"""
from typing import Optional

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.model.safety import ROLE_ADMIN
from imchat.protocol import (CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED, MEDIA_TEXT,
                             reply_quote)
from imchat.service.errors import Refusal
from imchat.service.rich_frame import EVERYONE
from imchat.util.clock import now_ms

# Distinct emoji one message may hold; a new one past it is refused.
DISTINCT_EMOJI_MAX = 32


def readable(db, user_id: int, message) -> bool:
    """In a db_session: may `user_id` read `message` (an entity of cmd 10 or 11)?"""
    if message.cmd == CMD_SINGLE_MSG:
        return user_id in (message.userid, message.dstid)
    membership = db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY, dstid=message.dstid)
    return membership is not None and message.id > membership.joined_msgid


def _readable_message(db, user_id, msgid, what):
    """(message, None) when `user_id` may read message `msgid`, else (None, Refusal)."""
    message = db.Message.get(id=msgid)
    if (message is None or message.cmd not in (CMD_SINGLE_MSG, CMD_ROOM_MSG)
            or not readable(db, user_id, message)):
        return None, Refusal('no message {} you can read'.format(msgid),
                             '{}.not_found'.format(what))
    if message.media == MEDIA_RECALLED:
        return None, Refusal('message {} was recalled'.format(msgid),
                             '{}.recalled'.format(what))
    return message, None


def _conversation_of(message, user_id):
    """(target, dstid) of `message`'s conversation as `user_id` addresses it."""
    if message.cmd == CMD_ROOM_MSG or message.userid != user_id:
        return message.cmd, (message.dstid if message.cmd == CMD_ROOM_MSG else message.userid)
    return message.cmd, message.dstid


def edit_refusal(db, sender_id: int, frame, edit_seconds: int,
                 conversation_refusal) -> Optional[Refusal]:
    """Why `sender_id` may not edit `frame.msgid`, or None after changing its text.
    `conversation_refusal(target, dstid)`: why the sender may not write there now."""
    original = db.Message.get(id=frame.msgid)
    if original is None or original.cmd not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        return Refusal('no message {}'.format(frame.msgid), 'edit.not_found')
    if original.userid != sender_id:
        return Refusal('message {} is not yours: only its sender may edit it'.format(
            frame.msgid), 'edit.not_yours')
    if original.media == MEDIA_RECALLED:
        return Refusal('message {} was recalled'.format(frame.msgid), 'edit.recalled')
    if original.media != MEDIA_TEXT:
        return Refusal('only a text message can be edited', 'edit.not_text')
    now = now_ms()
    if edit_seconds and now - original.createat > edit_seconds * 1000:
        return Refusal('message {} is too old to edit: at most {} seconds after sending'
                       .format(frame.msgid, edit_seconds), 'edit.too_late')
    refusal = conversation_refusal(original.cmd, original.dstid)
    if refusal:
        return refusal
    original.set(content=frame.content, editedat=now)
    frame.target, frame.dstid = original.cmd, original.dstid
    return None


def reaction_refusal(db, sender_id: int, frame, conversation_refusal) -> Optional[Refusal]:
    """Why `sender_id` may not set (or remove) `frame.content` on `frame.msgid`, or None
    after changing their reaction (`conversation_refusal` as for an edit)."""
    message, refusal = _readable_message(db, sender_id, frame.msgid, 'reaction')
    if refusal is not None:
        return refusal
    target, dstid = _conversation_of(message, sender_id)
    refusal = conversation_refusal(target, dstid)
    if refusal:
        return refusal
    mine = db.Reaction.get(msgid=message.id, userid=sender_id)
    emoji = frame.content
    if frame.memo == '0':
        if mine is None or mine.emoji != emoji:
            return Refusal('you have not reacted {} to message {}'.format(emoji, message.id),
                           'reaction.not_set')
        mine.delete()
    else:
        if mine is None or mine.emoji != emoji:
            # In Python: MySQL's utf8mb4 collations hold most emoji equal.
            distinct = set(db.select('SELECT emoji FROM reaction WHERE msgid = $mid',
                                     {'mid': message.id}))
            if emoji not in distinct and len(distinct) >= DISTINCT_EMOJI_MAX:
                return Refusal('message {} has {} different reactions already: use one of '
                               'them'.format(message.id, DISTINCT_EMOJI_MAX),
                               'reaction.too_many')
        if mine is None:
            db.Reaction(msgid=message.id, userid=sender_id, emoji=emoji, createat=now_ms())
        else:
            frame.pic = mine.emoji
            mine.set(emoji=emoji, createat=now_ms())
    frame.target, frame.dstid = target, dstid
    return None


def extras_refusal(db, sender_id: int, frame) -> Optional[Refusal]:
    """Why a message's `forward`, `replyto` or `mentions` cannot be, or None after
    filling in what they bring (the forwarded body, the quote, the kept mentions)."""
    extra = frame.extra
    if extra.forward:
        source, refusal = _readable_message(db, sender_id, extra.forward, 'forward')
        if refusal is not None:
            return refusal
        frame.media, frame.content, frame.pic = source.media, source.content, source.pic
        frame.url, frame.memo, frame.amount = source.url, source.memo, source.amount
        extra.forwarded = 1
    if extra.replyto:
        quoted = db.Message.get(id=extra.replyto)
        if quoted is None or not _in_conversation(db, quoted, sender_id, frame):
            return Refusal('replyto: no message {} in this conversation'.format(
                extra.replyto), 'reply.not_found')
        extra.reply = reply_quote(quoted.id, quoted.userid, quoted.media, quoted.content)
    if extra.mentions:
        refusal = _check_mentions(db, sender_id, frame.dstid, extra)
        if refusal is not None:
            return refusal
    return None


def _in_conversation(db, quoted, sender_id, frame):
    if quoted.cmd != frame.cmd:
        return False
    if frame.cmd == CMD_SINGLE_MSG:
        return {quoted.userid, quoted.dstid} == {sender_id, frame.dstid}
    return quoted.dstid == frame.dstid and readable(db, sender_id, quoted)


def _check_mentions(db, sender_id, community_id, extra):
    if extra.mentions == (EVERYONE,):
        if not _may_mention_everyone(db, sender_id, community_id):
            return Refusal('only the owner or an admin may mention everyone',
                           'mention.everyone_not_allowed')
        return None
    members = set(db.select(
        'SELECT ownerid FROM contact WHERE cate = $cate AND dstid = $cid AND ownerid IN ({})'
        .format(', '.join(str(int(m)) for m in extra.mentions)),
        {'cate': CONTACT_COMMUNITY, 'cid': community_id}))
    # Someone who left meanwhile is dropped, not a reason to lose the message.
    extra.mentions = tuple(m for m in extra.mentions if m in members)
    return None


def _may_mention_everyone(db, user_id, community_id):
    community = db.Community.get(id=community_id)
    if community is None:
        return False
    if community.ownerid == user_id:
        return True
    # An admin of issue 22's roles (service.roles), who is still a member.
    row = db.MemberRole.get(communityid=community_id, userid=user_id)
    return (row is not None and row.role == ROLE_ADMIN and db.Contact.exists(
        ownerid=user_id, cate=CONTACT_COMMUNITY, dstid=community_id))
