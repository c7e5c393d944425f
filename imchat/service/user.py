import secrets
import time
from typing import Callable, Optional

import gevent
from pony.orm import db_session, select

from imchat.model.entities import CONTACT_FRIEND, SEX_UNKNOWN
from imchat.service.errors import Conflict, NotFound, Unauthorized
from imchat.service.limits import LoginGuard, MemoryStore
from imchat.service.presence import Presence
from imchat.util.clock import now_ms
from imchat.util.passwd import check_passwd, make_passwd
from imchat.util.signal import Signal
from imchat.util.token import new_token, token_key

# Expired tokens are purged at most this often (seconds), on a login.
TOKEN_PURGE_INTERVAL = 3600


def _in_thread(function, *args):
    """Run a CPU-heavy call (scrypt, which releases the GIL) in gevent's thread pool,
    so the event loop keeps serving everyone else meanwhile."""
    return gevent.get_hub().threadpool.apply(function, args)



def canonical_mobile(mobile: str) -> str:
    """The one form a mobile is stored and looked up in: `+13900000000` and
    `13900000000` are one number, so one account (migration 0008 brought stored ones
    to this form)."""
    return mobile[1:] if mobile.startswith('+') else mobile


class UserService:
    def __init__(self, db, token_ttl, passwd_cost, login_attempts, login_window,
                 presence: Optional[Presence] = None, guard: Optional[LoginGuard] = None,
                 login_refusal: Callable[[int], None] = lambda user_id: None):
        self.db = db
        self.token_ttl_ms = token_ttl * 1000
        self.passwd_cost = passwd_cost
        self.guard = guard or LoginGuard(MemoryStore(), login_attempts, login_window)
        self._purged_at = None
        self._dummy_hash = make_passwd(secrets.token_hex(16), passwd_cost)
        # Who is connected, so profiles show it (None: nobody, as for a CLI command).
        self.presence = presence
        # (token key) after a logout commits: the chat hub closes the WebSockets opened
        # with that token (on every node, relayed by the bus).
        self.logged_out = Signal('logged_out')
        # Emitted with the user's id after their profile changed: the people who see it
        # (friends, fellow members) hear of it.
        self.profile_changed = Signal('profile_changed')
        # Raises when a user may not log in (a ban: service/admin.py); None: no rule.
        self.login_refusal = login_refusal

    def _is_online(self, user_id):
        return self.presence is not None and self.presence.is_online(user_id)

    def register(self, mobile, passwd, nickname=None, avatar='', sex=SEX_UNKNOWN, memo='',
                 client_addr=''):
        """Create an account and log it in; returns (own profile, token).
        Raises Conflict, TooManyRequests."""
        mobile = canonical_mobile(mobile)
        self.guard.begin_register(client_addr)
        # Hash outside the transaction: it is the slow part and needs no database.
        hashed = _in_thread(make_passwd, passwd, self.passwd_cost)
        with db_session:
            User = self.db.User
            if User.exists(mobile=mobile):
                raise Conflict('mobile {} is already registered'.format(mobile), field='mobile',
                               reason='conflict.mobile_registered')
            user = User(mobile=mobile, passwd=hashed,
                        nickname=nickname or 'user{:06d}'.format(secrets.randbelow(10 ** 6)),
                        avatar=avatar or '', sex=sex or SEX_UNKNOWN, memo=memo or '',
                        createat=now_ms())
            user.flush()
            token = self._issue_token(user.id)
            return user.to_own(), token

    def login(self, mobile, passwd, client_addr=''):
        """Check the password and issue a new token; returns (own profile, token).
        Raises Unauthorized, TooManyRequests."""
        mobile = canonical_mobile(mobile)
        # Failed attempts count, per mobile and per address; successful ones never do,
        # so many people behind one address (an office, a proxy) are not locked out.
        # Counted before the check and settled after it (see service.limits).
        attempt = self.guard.begin_login(mobile, client_addr)
        if attempt.delay:
            gevent.sleep(attempt.delay)
        with db_session:
            user = self.db.User.get(mobile=mobile)
            stored = user.passwd if user else None
        # The same hashing work whether or not the mobile exists, so timing tells nothing.
        valid = _in_thread(check_passwd, passwd, stored or self._dummy_hash)
        if not (valid and stored):
            attempt.failed()
            raise Unauthorized('wrong mobile or password', reason='auth.wrong_password')
        attempt.succeeded()
        self.login_refusal(user.id)
        self._purge_expired_tokens_now_and_then()
        with db_session:
            user = self.db.User[user.id]
            token = self._issue_token(user.id)
            return user.to_own(self._is_online(user.id)), token

    def logout(self, token):
        """End one token's session, WebSockets included."""
        key = token_key(token)
        with db_session:
            self.db.Token.select(lambda t: t.key == key).delete(bulk=True)
        self.logged_out.emit(key)

    def authenticate(self, token):
        """Return the id of the token's user. Raises Unauthorized."""
        return self.session(token)[0]

    def session(self, token):
        """Return (user id, expiry in ms) of a valid token. Raises Unauthorized."""
        if not token:
            raise Unauthorized('a token is required: log in and send it as '
                               '"Authorization: Bearer <token>"', reason='auth.token_missing')
        with db_session:
            row = self.db.Token.get(key=token_key(token))
            if row is None:
                raise Unauthorized('the token is not valid or has been logged out',
                                   reason='auth.token_invalid')
            if row.expireat <= now_ms():
                row.delete()
                raise Unauthorized('the token has expired, log in again',
                                   reason='auth.token_expired')
            return row.userid, row.expireat

    def find(self, user_id, viewer_id):
        """A user's public profile (with mobile for oneself). Raises NotFound."""
        with db_session:
            user = self.db.User.get(id=user_id)
            if user is None:
                raise NotFound('no user {}'.format(user_id), reason='not_found.user')
            if user.id == viewer_id:
                return user.to_own(self._is_online(user.id))
            online = self._is_friend(viewer_id, user.id) and self._is_online(user.id)
            return user.to_public(online)

    def find_by_mobile(self, mobile):
        """The id of the user with this mobile. Raises NotFound."""
        mobile = canonical_mobile(mobile)
        with db_session:
            user = self.db.User.get(mobile=mobile)
            if user is None:
                raise NotFound('no user with mobile {}'.format(mobile), field='mobile',
                               reason='not_found.user')
            return user.id

    def update_profile(self, user_id, changes):
        """Change one's own nickname, avatar, sex or memo. Raises NotFound."""
        with db_session:
            user = self.db.User.get(id=user_id)
            if user is None:
                raise NotFound('no user {}'.format(user_id), reason='not_found.user')
            for name in ('nickname', 'avatar', 'sex', 'memo'):
                if changes.get(name) is not None:
                    setattr(user, name, changes[name])
            view = user.to_own(self._is_online(user_id))
        self.profile_changed.emit(user_id)
        return view

    def public_profiles(self, user_ids, viewer_id):
        """Public profiles of these users, in id order, as `viewer_id` sees them: whether
        someone is online shows to their friends (and themself) only."""
        user_ids = list(user_ids)
        with db_session:
            users = select(u for u in self.db.User if u.id in user_ids).order_by(
                lambda u: u.id)[:]
            friends = set(select(c.dstid for c in self.db.Contact
                                 if c.ownerid == viewer_id and c.cate == CONTACT_FRIEND
                                 and c.dstid in user_ids)[:])
            friends.add(viewer_id)
            return [u.to_public(u.id in friends and self._is_online(u.id)) for u in users]

    def _is_friend(self, viewer_id, user_id):
        return self.db.Contact.exists(ownerid=viewer_id, cate=CONTACT_FRIEND, dstid=user_id)

    def purge_expired_tokens(self):
        """Delete every expired token."""
        with db_session:
            now = now_ms()
            self.db.Token.select(lambda t: t.expireat <= now).delete(bulk=True)

    def _purge_expired_tokens_now_and_then(self):
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= TOKEN_PURGE_INTERVAL:
            self._purged_at = now
            self.purge_expired_tokens()

    def change_passwd(self, token, passwd, new_passwd, client_addr=''):
        """Change the token's user's password after checking the current one, and end
        every other login of that user (their WebSockets included).
        Raises Unauthorized, TooManyRequests."""
        user_id = self.authenticate(token)
        with db_session:
            user = self.db.User[user_id]
            mobile, stored = user.mobile, user.passwd
        # A wrong current password counts as a failed login of that mobile.
        attempt = self.guard.begin_login(mobile, client_addr)
        if not _in_thread(check_passwd, passwd, stored):
            attempt.failed()
            raise Unauthorized('the current password is wrong', field='passwd',
                               reason='auth.wrong_password')
        attempt.succeeded()
        hashed = _in_thread(make_passwd, new_passwd, self.passwd_cost)
        keep = token_key(token)
        with db_session:
            self.db.User[user_id].passwd = hashed
            others = select(t for t in self.db.Token if t.userid == user_id and t.key != keep)
            ended = [row.key for row in others]
            others.delete(bulk=True)
        for key in ended:
            self.logged_out.emit(key)

    def _issue_token(self, user_id):
        token = new_token()
        now = now_ms()
        self.db.Token(key=token_key(token), userid=user_id, createat=now,
                      expireat=now + self.token_ttl_ms)
        return token
