"""Push subscriptions in the database: one row per browser endpoint, owned by the
login that subscribed it, at most MAX_PER_USER per person (the oldest go).

The subscriptions of a community's members are read for every group message the
planner pushes: a thousand rows, about 5 ms of SQLite holding the event loop, each
time. So `of_community` keeps them until something changes them: a subscription
made or removed here, a member joining or leaving, a logout (the last two on any node:
the bus relays them). What another node changes without an event this one hears (a
subscription made there, a join there) is read again after COMMUNITY_TTL.
"""
import hashlib
import time
from typing import Dict, Iterable, List, NamedTuple, Optional

from pony.orm import db_session, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.service.errors import BadRequest
from imchat.service.push.crypto import b64url_decode, load_point
from imchat.service.push.endpoint import EndpointRefused, parse_endpoint
from imchat.util.clock import now_ms

# Browsers (and so subscriptions) one person may have at once: a phone, a laptop, a
# work machine, with room to spare; the eleventh drops the oldest.
MAX_PER_USER = 10
# Seconds a community's subscriptions are kept at most (what other nodes change).
COMMUNITY_TTL = 5.0
# Communities kept at most; past it the cache starts again empty.
COMMUNITIES_KEPT = 1000


class Subscription(NamedTuple):
    id: int
    userid: int
    tokenkey: str
    endpoint: str
    p256dh: str
    auth: str
    expireat: int = 0


def endpoint_key(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode('utf-8')).hexdigest()


def check_subscription(raw, allow_private: bool):
    """(endpoint, p256dh, auth) from a browser's PushSubscription as JSON.
    Raises BadRequest (reason push.bad_subscription or push.endpoint_refused)."""
    if not isinstance(raw, dict):
        raise BadRequest('subscription must be a PushSubscription as JSON: '
                         '{"endpoint", "keys": {"p256dh", "auth"}}', field='subscription',
                         reason='push.bad_subscription')
    try:
        parse_endpoint(raw.get('endpoint'), allow_private)
    except EndpointRefused as error:
        raise BadRequest('subscription.endpoint: {}'.format(error), field='subscription',
                         reason='push.endpoint_refused')
    keys = raw.get('keys')
    p256dh = keys.get('p256dh') if isinstance(keys, dict) else None
    auth = keys.get('auth') if isinstance(keys, dict) else None
    try:
        if not (isinstance(p256dh, str) and isinstance(auth, str) and len(p256dh) < 100
                and len(auth) < 40):
            raise ValueError
        load_point(b64url_decode(p256dh))
        if len(b64url_decode(auth)) != 16:
            raise ValueError
    except ValueError:
        raise BadRequest('subscription.keys: p256dh must be a P-256 public key and auth 16 '
                         'bytes, both base64url', field='subscription',
                         reason='push.bad_subscription')
    return raw['endpoint'], p256dh.rstrip('='), auth.rstrip('=')


class Subscriptions:
    def __init__(self, db):
        self.db = db
        self._communities = {}  # community id -> (read at, {user id: [Subscription]})

    def forget(self, *_args) -> None:
        """Read every community's subscriptions again (a subscription, a membership or
        a login changed): connected to the contacts' and logins' events."""
        self._communities.clear()

    def add(self, user_id: int, token_key: str, expires_at: int, endpoint: str, p256dh: str,
            auth: str) -> None:
        """Store (or move to this login) a checked subscription; drop the user's oldest
        past MAX_PER_USER."""
        key = endpoint_key(endpoint)
        with db_session:
            Sub = self.db.PushSubscription
            row = Sub.get(endpointkey=key)
            if row is not None:
                row.delete()  # a browser subscribed again, maybe by someone else
            Sub(userid=user_id, tokenkey=token_key, endpointkey=key, endpoint=endpoint,
                p256dh=p256dh, auth=auth, createat=now_ms(), expireat=expires_at)
            rows = select(s for s in Sub if s.userid == user_id).order_by(
                lambda s: (s.createat, s.id))[:]
            for old in rows[:max(0, len(rows) - MAX_PER_USER)]:
                old.delete()
        self.forget()

    def remove(self, user_id: int, token_key: str, endpoint: Optional[str] = None) -> int:
        """Remove this login's subscription at `endpoint`, or all of them; how many."""
        with db_session:
            Sub = self.db.PushSubscription
            if endpoint:
                key = endpoint_key(endpoint)
                query = select(s for s in Sub if s.endpointkey == key and s.userid == user_id)
            else:
                query = select(s for s in Sub if s.tokenkey == token_key)
            removed = query.delete(bulk=True)
        self.forget()
        return removed

    def remove_login(self, token_key: str) -> None:
        with db_session:
            select(s for s in self.db.PushSubscription if s.tokenkey == token_key).delete(
                bulk=True)
        self.forget()

    def remove_id(self, subscription_id: int) -> None:
        with db_session:
            select(s for s in self.db.PushSubscription if s.id == subscription_id).delete(
                bulk=True)
        self.forget()

    def purge_expired(self) -> None:
        with db_session:
            now = now_ms()
            select(s for s in self.db.PushSubscription if s.expireat <= now).delete(bulk=True)

    def of_users(self, user_ids: Iterable[int],
                 except_login: Optional[str] = None) -> Dict[int, List[Subscription]]:
        """The live subscriptions of these users (in a db_session)."""
        user_ids = list(set(user_ids))
        if not user_ids:
            return {}
        now = now_ms()
        rows = select(s for s in self.db.PushSubscription
                      if s.userid in user_ids and s.expireat > now)[:]
        return _grouped(rows, except_login)

    def of_community(self, community_id: int) -> Dict[int, List[Subscription]]:
        """The live subscriptions of a community's members (opens a db_session when it
        reads them; kept for COMMUNITY_TTL or until `forget`)."""
        now, read_at = now_ms(), time.monotonic()
        kept = self._communities.get(community_id)
        if kept is None or read_at - kept[0] > COMMUNITY_TTL:
            kept = (read_at, self._read_community(community_id))
            if len(self._communities) >= COMMUNITIES_KEPT:
                self._communities.clear()
            self._communities[community_id] = kept
        grouped = kept[1]
        if any(sub.expireat <= now for subs in grouped.values() for sub in subs):
            # A login expired meanwhile: its subscriptions are not pushed to.
            grouped = {user_id: live for user_id, live in (
                (user_id, [sub for sub in subs if sub.expireat > now])
                for user_id, subs in grouped.items()) if live}
        return grouped

    def _read_community(self, community_id):
        with db_session:
            Sub, Contact = self.db.PushSubscription, self.db.Contact
            # Columns, not entities: a thousand members' rows are made quickly.
            rows = select((s.id, s.userid, s.tokenkey, s.endpoint, s.p256dh, s.auth,
                           s.expireat)
                          for s in Sub for c in Contact
                          if c.ownerid == s.userid and c.cate == CONTACT_COMMUNITY
                          and c.dstid == community_id and s.expireat > now_ms())[:]
        grouped = {}
        for row in rows:
            grouped.setdefault(row[1], []).append(Subscription(*row))
        return grouped


def _grouped(rows, except_login):
    grouped = {}
    for s in rows:
        if except_login is not None and s.tokenkey == except_login:
            continue
        grouped.setdefault(s.userid, []).append(
            Subscription(s.id, s.userid, s.tokenkey, s.endpoint, s.p256dh, s.auth,
                         s.expireat))
    return grouped
