"""Community roles and rules (issue 22): the owner, admins (the owner appoints up to
IMCHAT_MAX_ADMINS) and members; a community's join rule and its announcements switch
(only admins post); admins kick, mute and approve, the owner also appoints, removes and
transfers. `room_refusal` is what the message writer asks before storing a community
message; every change that may refuse one emits `rules_changed` (the bus relays it
to every node) so permission caches forget what they allowed."""
import logging

from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.model.safety import JOIN_MODES, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER
from imchat.protocol import contact_event
from imchat.service.errors import BadRequest, Conflict, Forbidden, NotFound, Refusal
from imchat.service.mutes import muted_now
from imchat.util.clock import now_ms
from imchat.util.signal import Signal

log = logging.getLogger(__name__)


class CommunityRoles:
    def __init__(self, db, contacts, push, max_admins=10, default_joinmode='approval'):
        self.db = db
        self.contacts = contacts
        self.push = push
        self.max_admins = max_admins
        if default_joinmode not in JOIN_MODES:
            raise ValueError('IMCHAT_DEFAULT_JOINMODE must be one of ' + ', '.join(JOIN_MODES))
        self.default_joinmode = default_joinmode
        # Called with (user_id, community_id) after a change that may refuse their
        # messages (user_id 0: every member's).
        # (user id or 0 for every member, community id): a rule that may refuse a
        # member's message changed; permission caches forget (on every node).
        self.rules_changed = Signal('rules_changed')

    # -- reading ---------------------------------------------------------------------

    def role(self, user_id, community) -> str:
        """In a db_session: `user_id`'s role in `community` (an entity), or None."""
        if community.ownerid == user_id:
            return ROLE_OWNER
        if not self.db.Contact.exists(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                      dstid=community.id):
            return None
        row = self.db.MemberRole.get(communityid=community.id, userid=user_id)
        return row.role if row is not None else ROLE_MEMBER

    def rule(self, community_id):
        """In a db_session: (joinmode, announce); no row is an old community, `open`."""
        row = self.db.CommunityRule.get(communityid=community_id)
        return (row.joinmode, row.announce) if row is not None else ('open', 0)

    def describe(self, community: dict) -> dict:
        """A community's view gains `joinmode` and `announce`."""
        with db_session:
            community['joinmode'], community['announce'] = self.rule(community['id'])
        return community

    def public_profile(self, community_id: int) -> dict:
        """What anyone may see: name, icon, memo, member count, join rule."""
        with db_session:
            community = self._community(community_id)
            joinmode, announce = self.rule(community_id)
            members = self.db.Contact.select(lambda c: c.cate == CONTACT_COMMUNITY
                                             and c.dstid == community_id).count()
            return {'id': community.id, 'name': community.name, 'icon': community.icon,
                    'memo': community.memo, 'members': members, 'joinmode': joinmode}

    def roles_of(self, community_id: int, member_ids) -> dict:
        """{member id: role} for a member list."""
        with db_session:
            community = self._community(community_id)
            special = dict(select((r.userid, r.role) for r in self.db.MemberRole
                                  if r.communityid == community_id)[:])
        roles = {m: special.get(m) or ROLE_MEMBER for m in member_ids}
        roles[community.ownerid] = ROLE_OWNER
        return roles

    def mutes_of(self, community_id: int) -> dict:
        """{member id: muteuntil} of the members an admin has muted now (-1: for ever)."""
        now = now_ms()
        with db_session:
            rows = select((r.userid, r.muteuntil) for r in self.db.MemberRole
                          if r.communityid == community_id and r.muteuntil != 0)[:]
        return {user_id: until for user_id, until in rows if until == -1 or until > now}

    def room_refusal(self, sender_id, community_id):
        """In the writer's transaction, for a member: why their message to the
        community is refused (a Refusal), or None."""
        row = self.db.MemberRole.get(communityid=community_id, userid=sender_id)
        if row is not None and row.muteuntil and muted_now(row.muteuntil, now_ms()):
            return Refusal('an admin muted you in community {} until {}'.format(
                community_id, 'further notice' if row.muteuntil < 0 else row.muteuntil),
                'community.muted')
        rule = self.db.CommunityRule.get(communityid=community_id)
        if rule is not None and rule.announce and (row is None or row.role != ROLE_ADMIN):
            community = self.db.Community.get(id=community_id)
            if community is not None and community.ownerid != sender_id:
                return Refusal('only the admins post in community {}'.format(community_id),
                               'community.announce_only')
        return None

    # -- changing --------------------------------------------------------------------

    def start(self, community_id: int, joinmode=None) -> None:
        """A new community's rule (the creator's choice, else the default)."""
        with db_session:
            self.db.CommunityRule(communityid=community_id,
                                  joinmode=joinmode or self.default_joinmode)

    def update(self, actor_id, community_id, name=None, icon=None, memo=None, joinmode=None,
               announce=None) -> dict:
        """The owner or an admin changes the community. Raises NotFound, Forbidden."""
        with db_session:
            community = self._community(community_id)
            self._admin(actor_id, community)
            for field, value in (('name', name), ('icon', icon), ('memo', memo)):
                if value is not None:
                    setattr(community, field, value)
            rule = self.db.CommunityRule.get(communityid=community_id)
            if rule is None:
                rule = self.db.CommunityRule(communityid=community_id, joinmode='open')
            if joinmode is not None:
                rule.joinmode = joinmode
            tightened = announce is not None and announce and not rule.announce
            if announce is not None:
                rule.announce = int(bool(announce))
            view = community.to_dict()
            view['joinmode'], view['announce'] = rule.joinmode, rule.announce
        if tightened:
            self._rules_changed(0, community_id)
        if name is not None or icon is not None:
            # Its members' lists show the new name or picture without a reload.
            try:
                self.push(self.contacts.member_ids_of(community_id),
                          contact_event('community', actor_id, community_id))
            except Exception:
                log.exception('could not tell the members of community %s', community_id)
        return view

    def set_role(self, owner_id, community_id, member_id, role) -> None:
        """The owner makes a member an admin or a plain member again.
        Raises NotFound, Forbidden, BadRequest, Conflict (too many admins)."""
        with db_session:
            community = self._community(community_id)
            if community.ownerid != owner_id:
                raise Forbidden('only the owner of community {} may appoint admins'
                                .format(community_id), reason='community.owner_only')
            if member_id == owner_id:
                raise BadRequest('you own community {}'.format(community_id),
                                 field='memberid', reason='community.already_owner')
            self._member(member_id, community)
            row = self.db.MemberRole.get(communityid=community_id, userid=member_id)
            if role == ROLE_ADMIN and (row is None or row.role != ROLE_ADMIN):
                admins = self.db.MemberRole.select(lambda r: r.communityid == community_id
                                                   and r.role == ROLE_ADMIN).count()
                if admins >= self.max_admins:
                    raise Conflict('community {} has {} admins, the most allowed'.format(
                        community_id, admins), field='memberid', reason='community.too_many_admins')
            if row is None:
                row = self.db.MemberRole(communityid=community_id, userid=member_id)
            row.role = role
        self._rules_changed(member_id, community_id)
        self.push((member_id,), contact_event('role', owner_id, community_id,
                                              memberid=member_id, role=role))

    def mute_member(self, actor_id, community_id, member_id, until) -> None:
        """An admin mutes a member until `until` ms (-1: for ever; 0: unmutes).
        Raises NotFound, Forbidden."""
        with db_session:
            community = self._community(community_id)
            actor_role = self._admin(actor_id, community)
            target_role = self._member(member_id, community)
            self._outranks(actor_role, target_role, 'mute')
            row = self.db.MemberRole.get(communityid=community_id, userid=member_id)
            if row is None:
                row = self.db.MemberRole(communityid=community_id, userid=member_id)
            row.muteuntil = until
        self._rules_changed(member_id, community_id)
        self.push((member_id,), contact_event('muted', actor_id, community_id,
                                              memberid=member_id, until=until))

    def kick(self, actor_id, community_id, member_id) -> None:
        """The owner or an admin removes a member (an admin: only plain members).
        Raises NotFound, Forbidden, BadRequest."""
        with db_session:
            community = self._community(community_id)
            actor_role = self._admin(actor_id, community)
            owner_id = community.ownerid
            if member_id != actor_id:
                self._outranks(actor_role, self._member(member_id, community), 'kick')
        self.contacts.kick(owner_id, community_id, member_id)
        with db_session:
            self.db.MemberRole.select(lambda r: r.communityid == community_id
                                      and r.userid == member_id).delete(bulk=True)
        self.push((member_id,), contact_event('kicked', actor_id, community_id,
                                              memberid=member_id))

    def left(self, user_id, community_id) -> None:
        """A member left: their role goes with them."""
        with db_session:
            self.db.MemberRole.select(lambda r: r.communityid == community_id
                                      and r.userid == user_id).delete(bulk=True)

    def transferred(self, old_owner, community_id, new_owner) -> None:
        """The new owner needs no admin row; the old one is a plain member."""
        with db_session:
            self.db.MemberRole.select(lambda r: r.communityid == community_id
                                      and r.userid == new_owner).delete(bulk=True)
        self._rules_changed(old_owner, community_id)
        self.push((new_owner,), contact_event('role', old_owner, community_id,
                                              memberid=new_owner, role=ROLE_OWNER))

    # -- helpers ---------------------------------------------------------------------

    def _community(self, community_id):
        community = self.db.Community.get(id=community_id)
        if community is None:
            raise NotFound('no community {}'.format(community_id), field='dstid',
                           reason='not_found.community')
        return community

    def _member(self, user_id, community):
        role = self.role(user_id, community)
        if role is None:
            raise NotFound('user {} is not a member of community {}'.format(
                user_id, community.id), field='memberid', reason='community.not_member')
        return role

    def _admin(self, user_id, community):
        role = self.role(user_id, community)
        if role not in (ROLE_OWNER, ROLE_ADMIN):
            raise Forbidden('only the owner and admins of community {} may do that'.format(
                community.id), reason='community.admin_only')
        return role

    @staticmethod
    def _outranks(actor_role, target_role, what):
        if target_role == ROLE_OWNER or (target_role == ROLE_ADMIN and actor_role != ROLE_OWNER):
            raise Forbidden('you may not {} the owner or another admin'.format(what),
                            field='memberid', reason='community.outranked')

    def _rules_changed(self, user_id, community_id):
        self.rules_changed.emit(user_id, community_id)
