"""Friend requests (issue 22): `/contact/addfriend` asks, the other accepts or declines;
two people who ask each other are friends at once. Until then no message passes either
way (the permission check in service/message.py looks for the friendship only).

A request to someone who blocks the requester looks sent and goes nowhere. Limits
against spam: requests a day, repeats of one request a day, and strangers a new
account may request in its first hour. With IMCHAT_FRIEND_REQUESTS=0 `addfriend` is the
original's instant add."""
import logging

from pony.orm import db_session, select

from imchat.model.safety import REQUEST_DECLINED, REQUEST_PENDING
from imchat.protocol import contact_event
from imchat.service.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
REQUESTED, FRIENDS = 'requested', 'friends'


class FriendRequests:
    def __init__(self, db, contacts, blocks, push, enabled=True, per_day=50, repeats=3,
                 new_account=5):
        self.db = db
        self.contacts = contacts
        self.blocks = blocks
        # push(user_ids, frame): the hub's (the bus carries it to every node).
        self.push = push
        self.enabled = enabled
        self.per_day = per_day
        self.repeats = repeats
        self.new_account = new_account

    def add(self, owner_id: int, dst_id: int, memo: str = '') -> str:
        """Ask `dst_id` to be friends; returns REQUESTED or FRIENDS (the other had asked
        first, or requests are off). Raises BadRequest, NotFound, Conflict, Forbidden,
        TooManyRequests."""
        if owner_id == dst_id:
            raise BadRequest('you cannot add yourself as a friend', field='dstid',
                             reason='contact.self')
        with db_session:
            db = self.db
            if not db.User.exists(id=dst_id):
                raise NotFound('no user {}'.format(dst_id), field='dstid', reason='not_found.user')
            if db.Block.exists(ownerid=owner_id, dstid=dst_id):
                raise Forbidden('you block user {}: unblock them first'.format(dst_id),
                                field='dstid', reason='contact.you_block')
            blocked = db.Block.exists(ownerid=dst_id, dstid=owner_id)
        if not self.enabled:
            if not blocked:
                self.contacts.add_friend(owner_id, dst_id)
                # Friends at once: the other person's lists follow without a reload.
                self.push((dst_id,), contact_event('accepted', owner_id, dst_id))
            return FRIENDS
        if self.contacts.is_friend(owner_id, dst_id):
            raise Conflict('user {} is already your friend'.format(dst_id), field='dstid',
                           reason='contact.already_friends')
        with db_session:
            mutual = self.db.FriendRequest.get(fromid=dst_id, toid=owner_id,
                                               state=REQUEST_PENDING)
            if mutual is not None and not blocked:
                mutual.delete()
                self.db.FriendRequest.select(
                    lambda r: r.fromid == owner_id and r.toid == dst_id).delete(bulk=True)
                mutual = True
        if mutual is True:
            self._befriend(owner_id, dst_id)
            return FRIENDS
        if blocked:
            return REQUESTED  # looks sent; nothing is stored, nobody is told
        sent = self._record(owner_id, dst_id, memo or '')
        if sent:
            self.push((dst_id,), contact_event('request', owner_id, dst_id, memo=memo or '',
                                               **sent))
        return REQUESTED

    def _record(self, owner_id, dst_id, memo):
        """Store (or repeat) the request within the limits; returns the requester's
        nickname and avatar for the event."""
        now = now_ms()
        with db_session:
            db = self.db
            row = db.FriendRequest.get(fromid=owner_id, toid=dst_id)
            if row is not None:
                if now - row.triedat < DAY_MS:
                    if self.repeats and row.tries >= self.repeats:
                        raise TooManyRequests(
                            'you asked user {} {} times today, the most allowed'.format(
                                dst_id, row.tries), field='dstid',
                            reason='contact.request_repeated')
                    row.tries += 1
                else:
                    row.tries, row.triedat = 1, now
                row.set(state=REQUEST_PENDING, memo=memo, createat=now)
            else:
                self._check_limits(owner_id, now)
                db.FriendRequest(fromid=owner_id, toid=dst_id, memo=memo, createat=now,
                                 triedat=now)
            me = db.User[owner_id]
            return {'nickname': me.nickname, 'avatar': me.avatar}

    def _check_limits(self, owner_id, now):
        FriendRequest = self.db.FriendRequest
        if self.per_day:
            today = FriendRequest.select(
                lambda r: r.fromid == owner_id and r.triedat > now - DAY_MS).count()
            if today >= self.per_day:
                raise TooManyRequests('you sent {} friend requests today, the most allowed'
                                      .format(today), reason='contact.requests_per_day')
        if self.new_account:
            created = self.db.User[owner_id].createat
            if now - created < HOUR_MS:
                sent = FriendRequest.select(lambda r: r.fromid == owner_id).count()
                if sent >= self.new_account:
                    raise TooManyRequests(
                        'a new account may ask {} people in its first hour: try again later'
                        .format(self.new_account), reason='contact.new_account')

    def _befriend(self, owner_id, other_id):
        try:
            self.contacts.add_friend(owner_id, other_id)
        except Conflict:
            pass  # befriended meanwhile
        self.push((other_id,), contact_event('accepted', owner_id, other_id))
        log.info('users %s and %s are friends', owner_id, other_id)

    def pending(self, owner_id: int) -> list:
        """Pending requests to and from `owner_id`, newest first, with the other's profile."""
        with db_session:
            db = self.db
            rows = select(r for r in db.FriendRequest if r.state == REQUEST_PENDING and (
                r.toid == owner_id or r.fromid == owner_id)).order_by(lambda r: -r.createat)[:]
            result = []
            for row in rows:
                other = row.fromid if row.toid == owner_id else row.toid
                user = db.User.get(id=other)
                if user is None:
                    continue
                result.append({'userid': other, 'nickname': user.nickname,
                               'avatar': user.avatar, 'memo': row.memo,
                               'createat': row.createat,
                               'direction': 'in' if row.toid == owner_id else 'out'})
            return result

    def accept(self, owner_id: int, from_id: int) -> None:
        """Raises NotFound when `from_id` has no pending request to `owner_id`."""
        with db_session:
            self._incoming(owner_id, from_id).delete()
            self.db.FriendRequest.select(
                lambda r: r.fromid == owner_id and r.toid == from_id).delete(bulk=True)
        self._befriend(owner_id, from_id)

    def decline(self, owner_id: int, from_id: int) -> None:
        """The requester is not told; the row stays, so repeats keep counting."""
        with db_session:
            self._incoming(owner_id, from_id).state = REQUEST_DECLINED

    def _incoming(self, owner_id, from_id):
        row = self.db.FriendRequest.get(fromid=from_id, toid=owner_id, state=REQUEST_PENDING)
        if row is None:
            raise NotFound('no request from user {}'.format(from_id), field='dstid',
                           reason='contact.no_request')
        return row
