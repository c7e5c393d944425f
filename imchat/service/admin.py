"""Operators' actions (issue 22), behind `flask --app wsgi admin ...` (imchat/cli.py):
find a user, ban and unban, erase a message for everyone, make or remove a community,
counts. Every action is written to `admin_log` (who, what, when) and the log.

A ban ends every login of the user: their tokens go, and each token's logout reaches
every node (the bus relays logouts), which closes the sockets opened with it; logins
are then refused with the ban's reason (`ban_refusal`, given to UserService)."""
import logging

from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.protocol import CMD_RECALL, contact_event
from imchat.service.errors import Forbidden, NotFound
from imchat.service.event_frame import EventFrame
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)


class Admin:
    def __init__(self, db, users, contacts, writer, permissions, push):
        self.db = db
        self.users = users
        self.contacts = contacts
        self.writer = writer
        self.permissions = permissions
        self.push = push

    def _log(self, actor, action, detail):
        with db_session:
            self.db.AdminLog(actor=actor, action=action, detail=detail[:1000],
                             createat=now_ms())
        log.warning('admin %s: %s %s', actor, action, detail)

    def find_user(self, key: str) -> dict:
        """A user by id or mobile, with what an operator needs. Raises NotFound."""
        with db_session:
            user = None
            if key.isdigit():
                user = self.db.User.get(mobile=key) or (
                    self.db.User.get(id=int(key)) if len(key) < 19 else None)
            if user is None:
                raise NotFound('no user with id or mobile {}'.format(key),
                               reason='not_found.user')
            view = user.to_own()
            ban = self.db.Ban.get(userid=user.id)
            view['banned'] = ban.reason or 'yes' if ban is not None else ''
            view['friends'] = self.db.Contact.select(
                lambda c: c.ownerid == user.id and c.cate == CONTACT_FRIEND).count()
            view['communities'] = self.db.Contact.select(
                lambda c: c.ownerid == user.id and c.cate == CONTACT_COMMUNITY).count()
            view['logins'] = self.db.Token.select(lambda t: t.userid == user.id).count()
            return view

    def ban(self, actor: str, user_id: int, reason: str = '') -> int:
        """Ban a user: every login ends now and logins are refused. Returns the number
        of logins ended."""
        with db_session:
            ban = self.db.Ban.get(userid=user_id)
            if ban is None:
                self.db.Ban(userid=user_id, reason=reason or '', createat=now_ms(), actor=actor)
            else:
                ban.set(reason=reason or '', actor=actor)
            tokens = select(t for t in self.db.Token if t.userid == user_id)
            keys = [t.key for t in tokens]
            tokens.delete(bulk=True)
        self._log(actor, 'ban', 'user {} reason {!r}'.format(user_id, reason or ''))
        self.push((user_id,), contact_event('banned', 0, user_id, reason=reason or ''))
        for key in keys:
            self.users.logged_out.emit(key)
        return len(keys)

    def unban(self, actor: str, user_id: int) -> None:
        with db_session:
            ban = self.db.Ban.get(userid=user_id)
            if ban is None:
                raise NotFound('user {} is not banned'.format(user_id), reason='not_found.ban')
            ban.delete()
        self._log(actor, 'unban', 'user {}'.format(user_id))

    def erase(self, actor: str, msgid: int):
        """Erase a message for everyone, as its sender's recall does (without the time
        limit). Returns the outcome (Stored, or Refused with why)."""
        with db_session:
            message = self.db.Message.get(id=msgid)
            if message is None:
                raise NotFound('no message {}'.format(msgid), reason='not_found.message')
            sender = message.userid
        # An operator's erase has no time limit (this is the CLI's own process).
        self.permissions.recall_seconds = 0
        result = self.writer.submit(sender, EventFrame(None, CMD_RECALL, 0, 0, msgid)).get()
        self._log(actor, 'erase', 'message {} of user {}'.format(msgid, sender))
        return result

    def make_community(self, actor: str, owner_id: int, name: str, joinmode: str, roles):
        view = self.contacts.create_community(owner_id, name)
        roles.start(view['id'], joinmode)
        self._log(actor, 'mkcommunity', 'community {} {!r} owner {}'.format(
            view['id'], name, owner_id))
        return view

    def remove_community(self, actor: str, community_id: int) -> int:
        """Remove a community and every membership (its messages stay stored)."""
        with db_session:
            if not self.db.Community.exists(id=community_id):
                raise NotFound('no community {}'.format(community_id),
                               reason='not_found.community')
            members = select(c.ownerid for c in self.db.Contact
                             if c.cate == CONTACT_COMMUNITY and c.dstid == community_id)[:]
        for member in members:
            with db_session:
                self.contacts._remove_member(member, community_id)
            self.contacts._notify_leave(member, community_id)
        with db_session:
            self.db.Community[community_id].delete()
            for entity in (self.db.MemberRole, self.db.JoinRequest):
                entity.select(lambda r: r.communityid == community_id).delete(bulk=True)
            self.db.CommunityRule.select(
                lambda r: r.communityid == community_id).delete(bulk=True)
        self._log(actor, 'rmcommunity', 'community {} ({} members)'.format(
            community_id, len(members)))
        return len(members)

    def counts(self) -> dict:
        now = now_ms()
        with db_session:
            return {'users': self.db.User.select().count(),
                    'messages': self.db.Message.select().count(),
                    'communities': self.db.Community.select().count(),
                    'banned': self.db.Ban.select().count(),
                    'open_reports': self.db.Report.select(lambda r: r.resolvedat == 0).count(),
                    # Users connected on any node (presence rows, kept when a bus joins nodes).
                    'connected_users': len(set(select(p.userid for p in self.db.Presence
                                                      if p.expireat > now)[:]))}


def ban_refusal(db, user_id: int) -> None:
    """Raises Forbidden, with the ban's reason, when `user_id` is banned."""
    with db_session:
        ban = db.Ban.get(userid=user_id)
        if ban is None:
            return
        reason = ban.reason
    raise Forbidden('this account is banned' + (': ' + reason if reason else ''),
                    reason='auth.banned')
