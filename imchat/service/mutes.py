"""Muting a conversation (issue 22): its messages still arrive and count as unread, but
not in the total badge (the client leaves rows with a `muteuntil` in the future, or -1,
out of it), and notifications push nothing for it unless the person is mentioned
(`is_muted` and, for a community's many members at once, `muting`, for the push
code)."""
from pony.orm import db_session, select

from imchat.model.safety import FOREVER
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, contact_event
from imchat.service.errors import BadRequest
from imchat.util.clock import now_ms


def muted_now(until, now):
    return until == FOREVER or until > now


class ChatMutes:
    def __init__(self, db, push=None):
        self.db = db
        # push(user_ids, frame): my other devices follow my mutes (cmd 17 `mute`).
        self.push = push

    def mute(self, owner_id: int, target: int, dstid: int, until: int) -> None:
        """Mute a conversation until `until` (ms since the epoch), for ever (-1), or
        unmute it (0). Raises BadRequest."""
        if target not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
            raise BadRequest('target must be 10 (a user) or 11 (a community)', field='target')
        if until < FOREVER:
            raise BadRequest('until must be a time in ms, 0 to unmute, or -1 for ever',
                             field='until')
        with db_session:
            row = self.db.ChatMute.get(ownerid=owner_id, target=target, dstid=dstid)
            if until == 0 or (until != FOREVER and until <= now_ms()):
                if row is not None:
                    row.delete()
            elif row is None:
                self.db.ChatMute(ownerid=owner_id, target=target, dstid=dstid, until=until)
            else:
                row.until = until
        if self.push is not None:
            self.push((owner_id,), contact_event('mute', owner_id, dstid, target=target,
                                                 until=until))

    def mutes_of(self, owner_id: int) -> dict:
        """{(target, dstid): until} of the conversations `owner_id` has muted now."""
        now = now_ms()
        with db_session:
            rows = select((m.target, m.dstid, m.until) for m in self.db.ChatMute
                          if m.ownerid == owner_id)[:]
        return {(t, d): u for t, d, u in rows if muted_now(u, now)}

    def is_muted(self, user_id: int, target: int, dstid: int, mentioned: bool = False) -> bool:
        """Whether a notification of a message in this conversation (target 10: dstid is
        the other person; 11: the community) should stay silent for `user_id`."""
        if mentioned:
            return False
        with db_session:
            row = self.db.ChatMute.get(ownerid=user_id, target=target, dstid=dstid)
            return row is not None and muted_now(row.until, now_ms())

    def muting(self, target: int, dstid: int) -> set:
        """The ids of those who have the conversation (target, dstid) muted now: one
        query for all the members of a community, where `is_muted` would be one each."""
        now = now_ms()
        with db_session:
            rows = select((m.ownerid, m.until) for m in self.db.ChatMute
                          if m.target == target and m.dstid == dstid)[:]
        return {owner_id for owner_id, until in rows if muted_now(until, now)}

    def annotate(self, owner_id: int, rows: list) -> list:
        """`/chat/conversations` rows gain `muteuntil` (0 when not muted)."""
        mutes = self.mutes_of(owner_id)
        for row in rows:
            row['muteuntil'] = mutes.get((row['target'], row['dstid']), 0)
        return rows
