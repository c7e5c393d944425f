"""Who may send what: a friend's conversation (cmd 10), a community's (cmd 11), a recall
(cmd 14), an edit (18), a reaction (19) and a message's richer fields (service.rich). Positive answers about friendships and memberships are kept in memory, since
every message asks; unfriending, leaving and kicking take theirs out (the named events
of service.contact, here and, relayed by the bus, on every node). See
docs/architecture.md.
"""
from typing import Callable, Optional

from pony.orm import db_session

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.protocol import CMD_EDIT, CMD_REACTION, CMD_RECALL, CMD_SINGLE_MSG
from imchat.service.errors import Refusal
from imchat.service.frame import Frame
from imchat.service.recall import recall_refusal
from imchat.service.rich import edit_refusal, extras_refusal, reaction_refusal

# Positive permission answers kept in memory; cleared when this many pile up.
PERMISSION_CACHE_MAX = 1000000


class Permissions:
    def __init__(self, db, recall_seconds: float = 0,
                 room_refusal: Optional[Callable[[int, int], Optional[str]]] = None,
                 edit_seconds: float = 0) -> None:
        self.db = db
        # How long after sending a message may be recalled, or edited (0: no limit).
        self.recall_seconds = recall_seconds
        self.edit_seconds = edit_seconds
        # (sender, community) -> why a member may not post there now (a muted member,
        # an announcements-only community: service/roles.py), or None. Its rules'
        # changes forget the cached answers (`CommunityRoles.rules_changed`).
        self.room_refusal = room_refusal
        self._allowed = set()
        self._revocations = 0

    def refusal(self, sender_id: int, frame) -> Optional[str]:
        """Inside a db_session: why `sender_id` may not send `frame`, or None when it may
        (a recall is carried out here, in the caller's transaction: service.recall)."""
        if frame.cmd >= CMD_RECALL:
            if frame.cmd == CMD_RECALL:
                return recall_refusal(
                    self.db, sender_id, frame, self.recall_seconds,
                    lambda cmd, dstid: self._relationship(sender_id, cmd, dstid,
                                                          posting=False))

            def conversation_refusal(target, dstid):
                return self.refusal(sender_id, Frame(None, target, dstid))
            if frame.cmd == CMD_EDIT:
                return edit_refusal(self.db, sender_id, frame, self.edit_seconds,
                                    conversation_refusal)
            if frame.cmd == CMD_REACTION:
                return reaction_refusal(self.db, sender_id, frame, conversation_refusal)
        refusal = self._relationship(sender_id, frame.cmd, frame.dstid)
        if refusal:
            return refusal
        if frame.extra is not None:
            return extras_refusal(self.db, sender_id, frame)
        return None

    def _relationship(self, sender_id, cmd, dstid, posting=True):
        """Why `sender_id` may not write to that friend or community, or None. Not
        `posting` (a recall): only whether the friendship or membership still stands
        (a muted member may take back their own message), and no answer is kept."""
        cate, refusal, reason = (
            (CONTACT_FRIEND, 'user {} is not your friend', 'contact.not_friends')
            if cmd == CMD_SINGLE_MSG else
            (CONTACT_COMMUNITY, 'you are not a member of community {}', 'community.not_member'))
        key = (cate, sender_id, dstid)
        if key not in self._allowed:
            revocations = self._revocations
            if not self.db.Contact.exists(ownerid=sender_id, cate=cate, dstid=dstid):
                return Refusal(refusal.format(dstid), reason)
            if not posting:
                return None
            if cate == CONTACT_COMMUNITY and self.room_refusal is not None:
                room_refusal = self.room_refusal(sender_id, dstid)
                if room_refusal:
                    return room_refusal
            if revocations == self._revocations:  # else the answer may predate a revocation
                self._remember(key)
        return None

    def may_write_to(self, sender_id: int, cmd: int, dstid: int) -> bool:
        """True when `sender_id` may send to that friend (cmd 10) or community (11)."""
        cate = CONTACT_FRIEND if cmd == CMD_SINGLE_MSG else CONTACT_COMMUNITY
        if (cate, sender_id, dstid) in self._allowed:
            return True
        with db_session:
            return self.refusal(sender_id, Frame(None, cmd, dstid)) is None

    def forget_permission(self, cate: int, owner_id: int, dstid: int) -> None:
        """A friendship or membership ended: check the database again next time."""
        self._allowed.discard((cate, owner_id, dstid))
        self._revocations += 1

    def unfriended(self, user_id: int, friend_id: int) -> None:
        """Neither may send to the other from now on, open connections included."""
        self.forget_permission(CONTACT_FRIEND, user_id, friend_id)
        self.forget_permission(CONTACT_FRIEND, friend_id, user_id)

    def left_community(self, user_id: int, community_id: int) -> None:
        """A member left or was kicked: nothing more from them to the group, at once."""
        self.forget_permission(CONTACT_COMMUNITY, user_id, community_id)

    def _remember(self, key):
        if len(self._allowed) >= PERMISSION_CACHE_MAX:
            self._allowed.clear()
        self._allowed.add(key)
