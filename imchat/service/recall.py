"""Recall (cmd 14): a sender takes back one of their own messages, within
IMCHAT_RECALL_SECONDS of sending it.

A recall is stored in the message stream like a message (cmd 14; its `media` column
holds the recalled message's cmd and `amount` its id), so it gets its own msgid, its
ack waits for the commit, and a client that was offline learns of it through `since`.
In the same transaction the recalled message's body is erased: its row keeps id,
sender, conversation and time, with media 0 and nothing else (see model.message_wire).
"""
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED
from imchat.service.errors import Refusal
from imchat.util.clock import now_ms


def recall_refusal(db, sender_id, frame, recall_seconds, relationship_refusal):
    """In the writer's transaction: why `sender_id` may not recall `frame.msgid`, or
    None after erasing the message and aiming the frame at its conversation.
    `relationship_refusal(cmd, dstid)`: why the sender may no longer write there (an
    ex-friend, a member who left or was kicked), or None; such a recall is refused, so
    it reaches nobody."""
    original = db.Message.get(id=frame.msgid)
    if original is None or original.cmd not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        return Refusal('no message {}'.format(frame.msgid), 'recall.not_found')
    if original.userid != sender_id:
        return Refusal('message {} is not yours: only its sender may recall it'.format(
            frame.msgid), 'recall.not_yours')
    if original.media == MEDIA_RECALLED:
        return Refusal('message {} is already recalled'.format(frame.msgid), 'recall.recalled')
    if recall_seconds and now_ms() - original.createat > recall_seconds * 1000:
        return Refusal('message {} is too old to recall: at most {} seconds after sending'
                       .format(frame.msgid, recall_seconds), 'recall.too_old')
    gone = relationship_refusal(original.cmd, original.dstid)
    if gone:
        return gone
    original.set(media=MEDIA_RECALLED, content='', pic='', url='', memo='', amount=0,
                 mentions='')
    frame.target, frame.dstid = original.cmd, original.dstid
    return None
