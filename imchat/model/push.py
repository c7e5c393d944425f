"""Entities of Web Push (imchat.service.push): subscriptions, the VAPID key, the
conversations a person was notified of, and who looks at a node's connections."""
from pony.orm import PrimaryKey, Required, composite_index

ENDPOINT_MAX = 1000


def define_push_entities(db):
    class PushSubscription(db.Entity):
        """A browser's PushSubscription, for one login (the token's key): logging
        out, a password change or the token's expiry removes it."""
        _table_ = 'push_subscription'
        id = PrimaryKey(int, auto=True, size=64)
        userid = Required(int, size=64)
        tokenkey = Required(str, 64, index=True)
        # SHA-256 of the endpoint: the URL itself is too long for a MySQL unique key.
        endpointkey = Required(str, 64, unique=True)
        endpoint = Required(str, ENDPOINT_MAX)
        p256dh = Required(str, 100)
        auth = Required(str, 40)
        createat = Required(int, size=64)
        # The login's expiry (ms): past it the subscription is no one's.
        expireat = Required(int, size=64, index=True)
        composite_index(userid, createat)

    class PushKey(db.Entity):
        """The deployment's VAPID private key (base64url), shared by every node."""
        _table_ = 'push_key'
        name = PrimaryKey(str, 32)
        private = Required(str, 100)
        createat = Required(int, size=64)

    class PushNotified(db.Entity):
        """The newest message a person was pushed about in a conversation, until they
        read it: a read then closes the notification on their other devices."""
        _table_ = 'push_notified'
        userid = Required(int, size=64)
        target = Required(int)
        dstid = Required(int, size=64)
        msgid = Required(int, size=64)
        PrimaryKey(userid, target, dstid)

    class PushAttention(db.Entity):
        """With several nodes: this node holds a visible connection of this user since
        `shownat` (ms), until `hiddenat` (0 while it does; a user all of whose
        connections are hidden, or none, gets pushes). Counts until `expireat`, which
        the node refreshes while the user looks."""
        _table_ = 'push_attention'
        userid = Required(int, size=64)
        node = Required(str, 100)
        shownat = Required(int, size=64)
        hiddenat = Required(int, size=64, default=0)
        expireat = Required(int, size=64, index=True)
        PrimaryKey(userid, node)
