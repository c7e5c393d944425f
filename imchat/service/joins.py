"""Joining a community under its rule (issue 22): `open` joins at once; `approval`
makes a join request the owner or an admin approves or rejects; `invite` admits only
someone a member invited (a friend of theirs). Joins are limited an hour per user."""
import logging

from pony.orm import db_session, desc, select

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.model.safety import JOIN_ASKED, JOIN_INVITED, ROLE_ADMIN
from imchat.protocol import contact_event
from imchat.service.errors import Forbidden, NotFound, TooManyRequests
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)

HOUR_MS = 3600 * 1000
JOINED, REQUESTED = 'joined', 'requested'


class CommunityJoins:
    def __init__(self, db, contacts, roles, push, joins_per_hour=20):
        self.db = db
        self.contacts = contacts
        self.roles = roles
        self.push = push
        self.joins_per_hour = joins_per_hour

    def join(self, user_id: int, community_id: int, memo: str = '') -> str:
        """Join (JOINED) or ask to (REQUESTED). Raises NotFound, Forbidden (an `invite`
        community without an invitation), TooManyRequests."""
        with db_session:
            community = self.roles._community(community_id)
            if self.roles.role(user_id, community) is not None:
                return JOINED  # joining again is harmless
            joinmode, _ = self.roles.rule(community_id)
            invited = self.db.JoinRequest.get(communityid=community_id, userid=user_id,
                                              kind=JOIN_INVITED)
            if joinmode == 'invite' and invited is None:
                raise Forbidden('community {} is joined by invitation only'.format(
                    community_id), field='dstid', reason='community.invite_only')
            self._check_rate(user_id)
            if joinmode == 'approval' and invited is None:
                asked = self.db.JoinRequest.get(communityid=community_id, userid=user_id,
                                                kind=JOIN_ASKED)
                if asked is None:
                    self.db.JoinRequest(communityid=community_id, userid=user_id,
                                        kind=JOIN_ASKED, memo=memo or '', createat=now_ms())
                admins = self._admin_ids(community)
                user = self.db.User[user_id]
                frame = contact_event('joinrequest', user_id, community_id, memo=memo or '',
                                      nickname=user.nickname, avatar=user.avatar)
            else:
                admins = None
                self.db.JoinRequest.select(lambda r: r.communityid == community_id
                                           and r.userid == user_id).delete(bulk=True)
        if admins is not None:
            if asked is None:
                self.push(admins, frame)
            return REQUESTED
        self.contacts.join_community(user_id, community_id)
        return JOINED

    def _check_rate(self, user_id):
        if not self.joins_per_hour:
            return
        since = now_ms() - HOUR_MS
        joins = self.db.Contact.select(lambda c: c.ownerid == user_id and c.cate ==
                                       CONTACT_COMMUNITY and c.createat > since).count()
        asks = self.db.JoinRequest.select(lambda r: r.userid == user_id and r.kind ==
                                          JOIN_ASKED and r.createat > since).count()
        if joins + asks >= self.joins_per_hour:
            raise TooManyRequests('you joined {} communities in the last hour, the most '
                                  'allowed'.format(joins + asks), reason='community.joins_per_hour')

    def _admin_ids(self, community):
        admins = select(r.userid for r in self.db.MemberRole
                        if r.communityid == community.id and r.role == ROLE_ADMIN)[:]
        return [community.ownerid] + list(admins)

    def invite(self, inviter_id: int, community_id: int, member_id: int) -> None:
        """A member invites a friend of theirs. Raises NotFound, Forbidden."""
        with db_session:
            community = self.roles._community(community_id)
            if self.roles.role(inviter_id, community) is None:
                raise Forbidden('you are not a member of community {}'.format(community_id),
                                field='dstid', reason='community.not_member')
            if not self.db.Contact.exists(ownerid=inviter_id, cate=CONTACT_FRIEND,
                                          dstid=member_id):
                raise NotFound('user {} is not your friend'.format(member_id),
                               field='memberid', reason='contact.not_friends')
            if self.roles.role(member_id, community) is not None:
                return
            if not self.db.JoinRequest.exists(communityid=community_id, userid=member_id,
                                              kind=JOIN_INVITED):
                self.db.JoinRequest(communityid=community_id, userid=member_id,
                                    kind=JOIN_INVITED, inviterid=inviter_id, createat=now_ms())
            frame = contact_event('invited', inviter_id, community_id, name=community.name,
                                  icon=community.icon)
        self.push((member_id,), frame)

    def invitations(self, user_id: int) -> list:
        """The invitations waiting for `user_id`, newest first: each community's public
        profile (a non-member sees nothing more) and who invited."""
        with db_session:
            rows = select(r for r in self.db.JoinRequest if r.userid == user_id
                          and r.kind == JOIN_INVITED).order_by(lambda r: desc(r.createat))[:]
            inviter_ids = list({r.inviterid for r in rows})
            inviters = {u.id: u for u in self.db.User.select(lambda u: u.id in inviter_ids)}
            found = []
            for row in rows:
                if self.db.Community.get(id=row.communityid) is None:
                    continue  # the community was removed since
                inviter = inviters.get(row.inviterid)
                found.append({'community': self.roles.public_profile(row.communityid),
                              'inviterid': row.inviterid,
                              'nickname': inviter.nickname if inviter else '',
                              'avatar': inviter.avatar if inviter else '',
                              'createat': row.createat})
            return found

    def decline_invitation(self, user_id: int, community_id: int) -> None:
        """Forget an invitation to `community_id` (none: nothing to do). The inviter is
        not told, as a declined friend request tells nobody."""
        with db_session:
            self.db.JoinRequest.select(lambda r: r.communityid == community_id and
                                       r.userid == user_id and r.kind == JOIN_INVITED
                                       ).delete(bulk=True)

    def pending(self, actor_id: int, community_id: int) -> list:
        """Join requests waiting for the owner or an admin, oldest first."""
        with db_session:
            self.roles._admin(actor_id, self.roles._community(community_id))
            rows = select(r for r in self.db.JoinRequest if r.communityid == community_id
                          and r.kind == JOIN_ASKED).order_by(lambda r: r.createat)[:]
            asking = [r.userid for r in rows]
            users = {u.id: u for u in self.db.User.select(lambda u: u.id in asking)}
            return [{'userid': r.userid, 'nickname': users[r.userid].nickname,
                     'avatar': users[r.userid].avatar, 'memo': r.memo, 'createat': r.createat}
                    for r in rows if r.userid in users]

    def decide(self, actor_id: int, community_id: int, member_id: int, approve: bool) -> None:
        """The owner or an admin approves or rejects a join request.
        Raises NotFound, Forbidden."""
        with db_session:
            self.roles._admin(actor_id, self.roles._community(community_id))
            row = self.db.JoinRequest.get(communityid=community_id, userid=member_id,
                                          kind=JOIN_ASKED)
            if row is None:
                raise NotFound('user {} has not asked to join community {}'.format(
                    member_id, community_id), field='memberid', reason='community.no_request')
            row.delete()
        if approve:
            self.contacts.join_community(member_id, community_id)
        self.push((member_id,), contact_event('approved' if approve else 'rejected',
                                              actor_id, community_id))
