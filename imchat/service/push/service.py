"""PushService: what the rest of the server calls. The message writer's
`batch_delivered` calls `messages_stored` after each committed batch is delivered, and
it returns at once: the work (who is away, who has subscriptions, merging, encrypting,
sending) happens on a planner greenlet and the sender's pool, never on the writer's
path. Only the node that stored a message calls it, so with several nodes each push is
sent once.

What a message costs the rest of the server (docs/push.md, "Cost to the sender"): a few
reads (subscriptions, mutes, profiles) per batch, no write at all (the conversations
notified stay in memory: notified.py), and the recipients planned in chunks of
PLAN_CHUNK with a turn for every other greenlet between two.
"""
import heapq
import itertools
import logging
import time
from collections import deque
from typing import Iterable, Optional

import gevent
from gevent.event import Event
from pony.orm import db_session, select

from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED
from imchat.service.errors import BadRequest
from imchat.service.limits import after_connected_work
from imchat.service.push import payload
from imchat.service.push.attention import Attention
from imchat.service.push.keys import Vapid, load_or_create
from imchat.service.push.notified import Notified
from imchat.service.push.sender import Push, Sender
from imchat.service.push.subscriptions import Subscriptions, check_subscription
from imchat.util.clock import now_ms
from imchat.util.greenlets import stop_gently

log = logging.getLogger(__name__)

# Jobs (a batch of stored messages, a read) waiting for the planner; past this the
# oldest is dropped and counted: pushes are a courtesy, storing is not.
PLAN_QUEUE_MAX = 10000
# Merge states remembered before the idle ones are forgotten.
MERGE_MEMORY = 100000
# Seconds a read push may wait in the push service (it only closes a notification).
READ_TTL = 3600
# Recipients planned before the planner lets the other greenlets run (acks, delivery).
PLAN_CHUNK = 100


def _urgency(target):
    return 'high' if target == CMD_SINGLE_MSG else 'normal'


def _mentioned(user_id, wire):
    # `mentions` (docs/protocol.md, "Richer messages"): member ids, or -1 for everyone.
    mentions = wire.get('mentions') or ()
    return user_id in mentions or -1 in mentions


class _Merge:
    """Pushes about one conversation to one person: the first goes at once, the ones
    within the merge window after it wait and leave as one (at `due`): their number
    and the last of them, which the merged push shows."""
    __slots__ = ('sent_at', 'held', 'last', 'due')

    def __init__(self):
        self.sent_at = 0.0
        self.held = 0
        self.last = None  # (wire, subscriptions)
        self.due = None


class PushService:
    def __init__(self, db, hub, metrics, config, mutes, node: Optional[str] = None) -> None:
        self.db = db
        self.metrics = metrics
        self.preview = config['PUSH_PREVIEW']
        self.allow_private = config['PUSH_ALLOW_PRIVATE']
        self.ttl = config['PUSH_TTL']
        self.merge_seconds = config['PUSH_MERGE_SECONDS']
        self.subscriptions = Subscriptions(db)
        self.attention = Attention(db, hub, node, config['PRESENCE_TTL'])
        self.notified = Notified(db, shared=node is not None)
        # service.mutes.ChatMutes: a muted conversation pushes nothing.
        self.mutes = mutes
        subject = config['VAPID_SUBJECT'].strip()
        self.vapid = self.sender = None
        if not subject.startswith(('mailto:', 'https:')):
            log.warning('push: IMCHAT_VAPID_SUBJECT is %s: Web Push is off. Set it to a '
                        'mailto: or https: URL push services can reach you at.',
                        'not set' if not subject else 'not a mailto: or https: URL')
        else:
            self.vapid = Vapid(load_or_create(db, config['VAPID_PRIVATE_KEY']), subject)
            self.sender = Sender(self.vapid, metrics, self._gone, self.allow_private,
                                 config['PUSH_QUEUE'], config['PUSH_SENDERS'],
                                 config['PUSH_TIMEOUT'], config['PUSH_RETRY_SECONDS'])
            self.subscriptions.purge_expired()
        self._jobs = deque()
        self._wake = Event()
        self._merges = {}
        # Merges whose window ends, soonest first: (due, n, key, senders), flushed by
        # one greenlet in chunks. A timer each made a thousand recipients of one group
        # message flush in one turn of the event loop, before it looked at the sockets
        # again: one sender's ack in 60 waited a few hundred milliseconds.
        self._due = []
        self._due_order = itertools.count()
        self._due_wake = Event()
        self._stopping = False
        self._planner = gevent.spawn(self._plan_forever) if self.enabled else None
        self._flusher = gevent.spawn(self._flush_forever) if self.enabled else None

    @property
    def enabled(self) -> bool:
        return self.vapid is not None

    # -- the calls of ctrl ---------------------------------------------------------

    def public_key(self) -> Optional[str]:
        """The VAPID public key (base64url), None when push is off."""
        return self.vapid.public if self.vapid else None

    def subscribe(self, user_id: int, token_key: str, expires_at: int, raw) -> None:
        """Store a browser's PushSubscription for this login.
        Raises BadRequest (push.disabled, push.bad_subscription, push.endpoint_refused)."""
        self._require_enabled()
        endpoint, p256dh, auth = check_subscription(raw, self.allow_private)
        self.subscriptions.add(user_id, token_key, expires_at, endpoint, p256dh, auth)

    def unsubscribe(self, user_id: int, token_key: str, endpoint: Optional[str] = None) -> None:
        """Remove this login's subscription at `endpoint`, or every one of it."""
        self.subscriptions.remove(user_id, token_key, endpoint)

    def _require_enabled(self):
        if not self.enabled:
            raise BadRequest('push notifications are off on this server '
                             '(IMCHAT_VAPID_SUBJECT is not set)', reason='push.disabled')

    # -- listeners: logins, connections, the writer, reads -------------------------

    def login_ended(self, token_key: str) -> None:
        """A logout (or a password change ending other logins): its subscriptions go."""
        self.subscriptions.remove_login(token_key)

    def messages_stored(self, wires: Iterable[dict]) -> None:
        """THE entry point of the writer, after a commit: never blocks, never raises."""
        if self._planner is None:
            return
        wires = [w for w in wires if w['cmd'] in (CMD_SINGLE_MSG, CMD_ROOM_MSG)
                 and w.get('media') != MEDIA_RECALLED]
        if wires:
            self._queue(('messages', wires))

    def conversation_read(self, user_id: int, token_key: Optional[str], target: int,
                          dstid: int, msgid: int) -> None:
        """A person read a conversation up to `msgid` on one device: the notification
        on their others closes."""
        if self._planner is not None:
            self._queue(('read', user_id, token_key, target, dstid, msgid))

    def friend_requested(self, from_id: int, to_id: int) -> None:
        """A hook for friend requests (the contacts issue): `to_id` hears of it."""
        if self._planner is not None:
            self._queue(('request', from_id, to_id))

    def stop(self) -> None:
        if self._planner is not None:
            # Waited for: the database goes right after, and a planner still inside a
            # session would find its connection closed under it.
            self._stopping = True
            self._wake.set()
            self._due_wake.set()
            stop_gently([self._planner, self._flusher])
        if self.sender is not None:
            self.sender.stop()
        self.notified.stop()
        self.attention.stop()

    # -- the planner ---------------------------------------------------------------

    def _queue(self, job):
        if len(self._jobs) >= PLAN_QUEUE_MAX:
            self._jobs.popleft()
            self.metrics.inc('imchat_push_dropped_total')
        self._jobs.append(job)
        self._wake.set()

    def _plan_forever(self):
        jobs = self._jobs
        while not self._stopping:
            if not jobs:
                self._wake.clear()
                self._wake.wait()
                continue
            # After the frames of the people connected: the planner wakes in the turn
            # that stored the message, before its acks and copies were written, and a
            # plan's first queries made each sender wait for them (2 ms at p50 on
            # SQLite, whose statements hold the event loop).
            after_connected_work()
            job = jobs.popleft()
            try:
                getattr(self, '_plan_' + job[0])(*job[1:])
            except Exception:
                log.exception('push: planning a %s push failed', job[0])

    def _plan_messages(self, wires):
        # Who may hear of each message: the 1:1 recipient, or the community's members
        # with a subscription, never the sender; nobody who muted the conversation.
        rooms = {w['dstid'] for w in wires if w['cmd'] == CMD_ROOM_MSG}
        with db_session:
            direct = self.subscriptions.of_users(
                w['dstid'] for w in wires if w['cmd'] == CMD_SINGLE_MSG)
        communities = {dstid: self.subscriptions.of_community(dstid) for dstid in rooms}
        muting = {dstid: self.mutes.muting(CMD_ROOM_MSG, dstid) for dstid in rooms}
        wanted = []  # (recipient, target, dstid, wire, subscriptions)
        for wire in wires:
            if wire['cmd'] == CMD_SINGLE_MSG:
                user_id = wire['dstid']
                subs = direct.get(user_id)
                if subs and user_id != wire['userid'] and not self.mutes.is_muted(
                        user_id, CMD_SINGLE_MSG, wire['userid'], _mentioned(user_id, wire)):
                    wanted.append((user_id, CMD_SINGLE_MSG, wire['userid'], wire, subs))
            else:
                muted = muting[wire['dstid']]
                for user_id, subs in communities[wire['dstid']].items():
                    if user_id != wire['userid'] and (user_id not in muted
                                                      or _mentioned(user_id, wire)):
                        wanted.append((user_id, CMD_ROOM_MSG, wire['dstid'], wire, subs))
        if not wanted:
            return
        senders = self._profiles({item[3]['userid'] for item in wanted})
        payloads = {}  # one payload per message and conversation, not per recipient
        for start in range(0, len(wanted), PLAN_CHUNK):
            if start:
                after_connected_work()
            chunk = wanted[start:start + PLAN_CHUNK]
            # As of each message's storing: the planner may come to it after the page
            # that showed it was hidden.
            away = set(self.attention.away({(item[0], item[3]['createat'])
                                            for item in chunk}))
            notified = {}
            for user_id, target, dstid, wire, subs in chunk:
                if (user_id, wire['createat']) in away and self._merge(
                        user_id, target, dstid, wire, subs, senders, payloads):
                    notified[(user_id, target, dstid)] = wire['msgid']
            self.notified.remember(notified)

    def _merge(self, user_id, target, dstid, wire, subs, senders, payloads):
        """Push now, or hold for the merged push at the end of the window; True when
        pushed now."""
        key = (user_id, target, dstid)
        merge = self._merges.get(key)
        if merge is None:
            if len(self._merges) >= MERGE_MEMORY:
                self._forget_idle_merges()
            merge = self._merges[key] = _Merge()
        now = time.monotonic()
        if merge.due is None and now - merge.sent_at >= self.merge_seconds:
            merge.sent_at = now
            cached = (wire['msgid'], target, dstid)
            data = payloads.get(cached)
            if data is None:
                data = payloads[cached] = self._message_payload(target, dstid, wire, senders, 1)
            self._send(subs, data, self.ttl, _urgency(target), payload.topic(target, dstid))
            return True
        merge.held += 1
        merge.last = (wire, subs)
        if merge.due is None:
            merge.due = merge.sent_at + self.merge_seconds
            heapq.heappush(self._due, (merge.due, next(self._due_order), key, senders))
            self._due_wake.set()
        return False

    def _flush_forever(self):
        due = self._due
        while not self._stopping:
            if not due:
                self._due_wake.clear()
                self._due_wake.wait()
                continue
            wait = due[0][0] - time.monotonic()
            if wait > 0:
                self._due_wake.clear()
                self._due_wake.wait(timeout=wait)  # or sooner, for a sooner merge
                continue
            now = time.monotonic()
            for _ in range(PLAN_CHUNK):
                if not due or due[0][0] > now:
                    break
                _, _, key, senders = heapq.heappop(due)
                try:
                    self._flush_merge(key, senders)
                except Exception:
                    log.exception('push: sending a merged push failed')
            after_connected_work()  # the sockets, between chunks

    def _flush_merge(self, key, senders):
        """Send what a merge held, as one push (its window ended)."""
        merge = self._merges.get(key)
        if merge is None or not merge.held:
            if merge is not None:
                merge.due = None
            return
        held, (wire, subs) = merge.held, merge.last
        merge.held, merge.last, merge.due = 0, None, None
        merge.sent_at = time.monotonic()
        user_id, target, dstid = key
        self._send(subs, self._message_payload(target, dstid, wire, senders, held),
                   self.ttl, _urgency(target), payload.topic(target, dstid))
        self.notified.remember({key: wire['msgid']})

    def _forget_idle_merges(self):
        horizon = time.monotonic() - self.merge_seconds
        self._merges = {key: merge for key, merge in self._merges.items()
                        if merge.due is not None or merge.sent_at > horizon}

    def _message_payload(self, target, dstid, wire, senders, count):
        sender = senders.get(wire['userid']) or {'id': wire['userid'], 'nickname': '',
                                                 'avatar': ''}
        return payload.message_payload(wire, target, dstid, sender, self.preview, count)

    def _send(self, subs, data, ttl, urgency, topic):
        for sub in subs:
            self.sender.put(Push(sub.id, sub.endpoint, sub.p256dh, sub.auth, data, ttl,
                                 urgency, topic))

    def _profiles(self, user_ids):
        with db_session:
            users = select(u for u in self.db.User if u.id in list(user_ids))[:]
            return {u.id: payload.sender_view(u) for u in users}

    def _plan_read(self, user_id, token_key, target, dstid, msgid):
        if not self.notified.take((user_id, target, dstid), msgid):
            return  # nothing shown, or a newer message still unread
        with db_session:
            subs = self.subscriptions.of_users([user_id], except_login=token_key).get(user_id)
        self._send(subs or (), payload.read_payload(target, dstid, msgid), READ_TTL, 'normal',
                   payload.topic(target, dstid))

    def _plan_request(self, from_id, to_id):
        if not self.attention.away([(to_id, now_ms())]):
            return
        with db_session:
            subs = self.subscriptions.of_users([to_id]).get(to_id)
        if not subs:
            return
        sender = self._profiles([from_id]).get(from_id)
        if sender is None:
            return
        self._send(subs, payload.request_payload(sender, self.preview), self.ttl, 'normal',
                   'request')

    def _gone(self, subscription_id):
        """The push service says the browser unsubscribed (404/410)."""
        self.subscriptions.remove_id(subscription_id)
