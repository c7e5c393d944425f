"""Entities of issue 22, "Who may reach me": friend requests, blocks, conversation
mutes, community rules and roles, join requests and invitations, reports, bans and the
operators' log.

All are new tables (Pony creates them at start), so an old database needs no migration
for them: a community without a `community_rule` row is `open` (as every community was
before), and a member without a `member_role` row is a plain member, not muted. Existing
friendships and memberships stay where they were, in `contact`.
"""
from pony.orm import Optional, PrimaryKey, Required, composite_index, composite_key

REASON_MAX = 200
JOIN_MODES = ('open', 'approval', 'invite')
ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER = 'owner', 'admin', 'member'
REPORT_REASONS = ('spam', 'abuse', 'illegal', 'other')
# A mute's `until` meaning "for ever" (docs/protocol.md, /chat/mute).
FOREVER = -1
# FriendRequest.state
REQUEST_PENDING, REQUEST_DECLINED = 0, 1
# JoinRequest.kind
JOIN_ASKED, JOIN_INVITED = 'request', 'invite'


def define_safety_entities(db):
    class FriendRequest(db.Entity):
        """`fromid` asked `toid` to be friends. Accepting removes the row (the friendship
        is in `contact`); declining keeps it, so repeats stay counted."""
        _table_ = 'friend_request'
        id = PrimaryKey(int, auto=True, size=64)
        fromid = Required(int, size=64)
        toid = Required(int, size=64, index=True)
        memo = Optional(str, 140)
        state = Required(int, default=REQUEST_PENDING)
        createat = Required(int, size=64)
        # Sent `tries` times since `triedat`'s day began (a repeat limit a day).
        tries = Required(int, default=1)
        triedat = Required(int, size=64)
        composite_key(fromid, toid)
        composite_index(fromid, triedat)

    class Block(db.Entity):
        _table_ = 'block'
        ownerid = Required(int, size=64)
        dstid = Required(int, size=64, index=True)
        createat = Required(int, size=64)
        PrimaryKey(ownerid, dstid)

    class ChatMute(db.Entity):
        """`ownerid` muted a conversation (target 10 or 11) until `until` ms, or for ever."""
        _table_ = 'chat_mute'
        ownerid = Required(int, size=64)
        target = Required(int)
        dstid = Required(int, size=64)
        until = Required(int, size=64)
        PrimaryKey(ownerid, target, dstid)

    class CommunityRule(db.Entity):
        _table_ = 'community_rule'
        communityid = PrimaryKey(int, size=64)
        joinmode = Required(str, 16, default='open')
        # 1: only the owner and admins post.
        announce = Required(int, default=0)

    class MemberRole(db.Entity):
        """A member's role other than plain member, or their mute; no row: a plain member."""
        _table_ = 'member_role'
        communityid = Required(int, size=64)
        userid = Required(int, size=64)
        role = Required(str, 16, default=ROLE_MEMBER)
        muteuntil = Required(int, size=64, default=0)
        PrimaryKey(communityid, userid)

    class JoinRequest(db.Entity):
        """A join waiting for an admin (`request`) or for the invitee (`invite`)."""
        _table_ = 'join_request'
        communityid = Required(int, size=64)
        userid = Required(int, size=64, index=True)
        kind = Required(str, 16)
        inviterid = Required(int, size=64, default=0)
        memo = Optional(str, 140)
        createat = Required(int, size=64)
        PrimaryKey(communityid, userid, kind)

    class Report(db.Entity):
        _table_ = 'report'
        id = PrimaryKey(int, auto=True, size=64)
        reporterid = Required(int, size=64)
        userid = Required(int, size=64, index=True)
        msgid = Required(int, size=64, default=0)
        reason = Required(str, 16)
        memo = Optional(str, 500)
        # The reported message as it was when reported (JSON), kept even if recalled.
        content = Optional(str, 8000)
        createat = Required(int, size=64)
        resolvedat = Required(int, size=64, default=0, index=True)
        resolvedby = Optional(str, 100)
        resolution = Optional(str, REASON_MAX)

    class Ban(db.Entity):
        _table_ = 'ban'
        userid = PrimaryKey(int, size=64)
        reason = Optional(str, REASON_MAX)
        createat = Required(int, size=64)
        actor = Optional(str, 100)

    class AdminLog(db.Entity):
        """Every operator action: who, what, when."""
        _table_ = 'admin_log'
        id = PrimaryKey(int, auto=True, size=64)
        actor = Required(str, 100)
        action = Required(str, 40)
        detail = Optional(str, 1000)
        createat = Required(int, size=64, index=True)
