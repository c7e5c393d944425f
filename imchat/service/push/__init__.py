"""Web Push (issue 21, docs/push.md): notifications to people who are not looking.

    service.py        PushService, the one object the rest of the server calls
    subscriptions.py  browsers' PushSubscriptions, per login
    attention.py      who is looking (an open, visible connection on any node)
    payload.py        what a push carries
    sender.py         the bounded queue and the pool that posts pushes
    crypto.py, keys.py  RFC 8291 encryption, the VAPID key and JWT (RFC 8292)
    endpoint.py       which endpoints a push may go to
"""
from imchat.service.push.service import PushService

__all__ = ['PushService']
