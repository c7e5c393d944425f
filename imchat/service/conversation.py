"""Conversations: the chat list, unread counts and read positions.

Each user has one `conversation` row per conversation (target 10: a friend, 11: a
community) holding its last message id, the user's read position and how many messages
from others came after it. The message writer updates these rows in the same
transaction as the messages (`conversation_statements`), so the list is one indexed query and
a few primary-key lookups, however many messages are stored.

Invariants:
- `readmsgid` only moves forward, and only by a read (cmd 12): sending a message does
  not move it, so the read that follows always moves it and its receipt goes out.
- `unread` counts the others' messages stored after `readmsgid` (since the row exists):
  the writer adds to it, a read subtracts exactly the messages it passes, in one
  compare-and-set statement, so a read and a message committing at once never lose
  a count.
- A community's rows exist for its members only: joining adds one, leaving deletes it.
"""
import logging

from pony.orm import count, db_session, select

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.model.sql import execute_sql
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED, message_wire, rich_fields
from imchat.service.errors import BadRequest, Forbidden, NotFound

log = logging.getLogger(__name__)

CONVERSATIONS_DEFAULT = 200
CONVERSATIONS_MAX = 1000
_COLUMNS = ('ownerid', 'target', 'dstid', 'last_msgid', 'readmsgid', 'unread')
# Attempts at moving a read position that others move at the same moment.
_READ_ATTEMPTS = 5


def _upsert(db, rows, updates):
    """The statement inserting conversation rows, or updating the existing ones with
    `updates`, where NEW(column) is the value the row would have been inserted with."""
    if db.provider.dialect == 'SQLite':
        tail = ' ON CONFLICT (ownerid, target, dstid) DO UPDATE SET ' + _new_values(
            updates, 'excluded.{}')
    else:
        tail = ' ON DUPLICATE KEY UPDATE ' + _new_values(updates, 'VALUES({})')
    one = '(' + ', '.join('?' * len(_COLUMNS)) + ')'
    text = 'INSERT INTO conversation ({}) VALUES {}{}'.format(
        ', '.join(_COLUMNS), ', '.join([one] * len(rows)), tail)
    return text, [value for row in rows for value in row]


def _new_values(updates, form):
    for column in _COLUMNS:
        updates = updates.replace('NEW({})'.format(column), form.format(column))
    return updates


def conversation_statements(db, stored):
    """The statements, [(text, values)], that move the conversations of these stored
    messages, (sender id, cmd, dstid, msgid) in id order, forward; the message writer
    runs them in the messages' transaction. Each row gets its last message; the others'
    messages count as unread. Sending moves no read position (only a read does, so its
    receipt always goes out). A msgid may be a model.sql.MessageId."""
    rows = {}       # (owner, target, dstid) -> [last, added unread]
    groups = {}     # community id -> [last, count, {sender id: own count}]
    for sender_id, cmd, dstid, msgid in stored:
        if cmd == CMD_SINGLE_MSG:
            for key, added in (((sender_id, cmd, dstid), 0), ((dstid, cmd, sender_id), 1)):
                row = rows.setdefault(key, [0, 0])
                row[0] = msgid
                row[1] += added
        elif cmd == CMD_ROOM_MSG:
            group = groups.setdefault(dstid, [0, 0, {}])
            group[0] = msgid
            group[1] += 1
            group[2][sender_id] = group[2].get(sender_id, 0) + 1
    for community_id, (last, count, senders) in groups.items():
        for sender_id, own in senders.items():
            rows[(sender_id, CMD_ROOM_MSG, community_id)] = [last, count - own]
    statements = []
    if rows:
        # Rows in key order, so two writers (two nodes) lock them in the same order.
        statements.append(_upsert(
            db, sorted(key + (last, 0, added) for key, (last, added) in rows.items()),
            'last_msgid = NEW(last_msgid), unread = unread + NEW(unread)'))
    for community_id, (last, added, senders) in sorted(groups.items()):
        sender_ids = sorted(senders)
        statements.append((
            'UPDATE conversation SET last_msgid = ?, unread = unread + ? WHERE target = ? '
            'AND dstid = ? AND ownerid NOT IN ({})'.format(', '.join('?' * len(sender_ids))),
            [last, added, CMD_ROOM_MSG, community_id] + sender_ids))
    return statements


def open_group_conversation(db, user_id, community_id, joined_msgid):
    """In a join's transaction: the member's row, read up to where they joined."""
    if not db.Conversation.exists(ownerid=user_id, target=CMD_ROOM_MSG, dstid=community_id):
        db.Conversation(ownerid=user_id, target=CMD_ROOM_MSG, dstid=community_id,
                        readmsgid=joined_msgid)


def close_group_conversation(db, user_id, community_id):
    """In a leave's transaction: the member's row goes with the membership."""
    db.Conversation.select(lambda c: c.ownerid == user_id and c.target == CMD_ROOM_MSG
                           and c.dstid == community_id).delete(bulk=True)


class ConversationService:
    def __init__(self, db):
        self.db = db

    def conversations(self, user_id, limit=None):
        """The user's conversations with messages, most recent first."""
        limit = max(1, min(limit or CONVERSATIONS_DEFAULT, CONVERSATIONS_MAX))
        with db_session:
            rows = execute_sql(
                self.db, 'SELECT c.target, c.dstid, c.readmsgid, c.unread, p.readmsgid, '
                         'm.id, m.userid, m.cmd, m.dstid, m.media, m.content, m.pic, m.url, '
                         'm.memo, m.amount, m.createat, m.editedat, m.replyto, m.forwarded, '
                         'm.mentions '
                         'FROM conversation c JOIN message m ON m.id = c.last_msgid '
                         'LEFT JOIN conversation p '
                         'ON c.target = ? AND p.ownerid = c.dstid AND p.target = ? '
                         'AND p.dstid = c.ownerid '
                         'WHERE c.ownerid = ? AND c.last_msgid > 0 '
                         'ORDER BY c.last_msgid DESC LIMIT ?',
                         (CMD_SINGLE_MSG, CMD_SINGLE_MSG, user_id, limit)).fetchall()
            result = []
            for row in rows:
                target, dstid, readmsgid, unread, peer_read = row[:5]
                last = message_wire(*row[5:16])
                if last['media'] != MEDIA_RECALLED:
                    rich_fields(last, *row[16:])
                item = {'target': target, 'dstid': dstid, 'last': last,
                        'unread': unread, 'readmsgid': readmsgid}
                if target == CMD_SINGLE_MSG:
                    item['peerreadmsgid'] = peer_read or 0
                elif unread:
                    # Left out when 0, as empty fields of a message are.
                    mentioned = self._mentions_after(user_id, dstid, readmsgid)
                    if mentioned:
                        item['mentioned'] = mentioned
                result.append(item)
        return result

    def _mentions_after(self, user_id, community_id, readmsgid):
        """Others' messages of a community after my read position that mention me (or
        everyone): only rows with unread messages ask, through the (cmd, dstid, id) index."""
        me = str(int(user_id))
        return execute_sql(
            self.db, "SELECT COUNT(*) FROM message WHERE cmd = ? AND dstid = ? AND id > ? "
                     "AND userid != ? AND mentions != '' AND (mentions IN ('-1', ?) "
                     "OR mentions LIKE ? OR mentions LIKE ? OR mentions LIKE ?)",
            (CMD_ROOM_MSG, community_id, readmsgid, user_id, me, me + ',%', '%,' + me,
             '%,' + me + ',%')).fetchone()[0]

    def mark_read(self, user_id, target, dstid, msgid):
        """Move the user's read position in a conversation forward to `msgid` (at most
        its last message); returns the new position, or None when it did not move.
        Raises BadRequest, NotFound, Forbidden."""
        with db_session:
            # Asked every time: the conversation's row outlives a friendship or a
            # membership, and an ex-friend's receipt must reach nobody.
            self._check_in_conversation(user_id, target, dstid)
            for _ in range(_READ_ATTEMPTS):
                row = execute_sql(self.db, 'SELECT last_msgid, readmsgid FROM conversation '
                                  'WHERE ownerid = ? AND target = ? AND dstid = ?',
                                  (user_id, target, dstid)).fetchone()
                if row is None:
                    return None  # nothing stored there yet: nothing to read
                last, read = row
                position = min(msgid, last)
                if position <= read:
                    return None
                passed = self._others_messages(user_id, target, dstid, read, position)
                moved = execute_sql(self.db, 'UPDATE conversation SET readmsgid = ?, '
                                    'unread = CASE WHEN unread > ? THEN unread - ? ELSE 0 END '
                                    'WHERE ownerid = ? AND target = ? AND dstid = ? '
                                    'AND readmsgid = ?',
                                    (position, passed, passed, user_id, target, dstid, read),
                                    write=True).rowcount
                if moved:
                    return position
            log.warning('read position of user %s kept moving under us', user_id)
            return None

    def _check_in_conversation(self, user_id, target, dstid):
        db = self.db
        if target == CMD_SINGLE_MSG:
            if not db.Contact.exists(ownerid=user_id, cate=CONTACT_FRIEND, dstid=dstid):
                if not db.User.exists(id=dstid):
                    raise NotFound('no user {}'.format(dstid), field='dstid',
                                   reason='not_found.user')
                raise Forbidden('user {} is not your friend'.format(dstid),
                                reason='contact.not_friends')
        elif target == CMD_ROOM_MSG:
            if not db.Contact.exists(ownerid=user_id, cate=CONTACT_COMMUNITY, dstid=dstid):
                if not db.Community.exists(id=dstid):
                    raise NotFound('no community {}'.format(dstid), field='dstid',
                                   reason='not_found.community')
                raise Forbidden('you are not a member of community {}'.format(dstid),
                                reason='community.not_member')
        else:
            raise BadRequest('target must be 10 (a user) or 11 (a community)', field='target')

    def _others_messages(self, user_id, target, dstid, after, up_to):
        Message = self.db.Message
        if target == CMD_SINGLE_MSG:
            return count(m for m in Message if m.cmd == CMD_SINGLE_MSG and m.dstid == user_id
                         and m.id > after and m.id <= up_to and m.userid == dstid)
        return count(m for m in Message if m.cmd == CMD_ROOM_MSG and m.dstid == dstid
                     and m.id > after and m.id <= up_to and m.userid != user_id)

    def rebuild_if_missing(self):
        """A database from before conversations existed: give every conversation with
        messages, and every membership, its row, everything so far counted as read."""
        db = self.db
        with db_session:
            if db.Conversation.select().exists():
                return
            pairs = {}
            for sender_id, dstid, last in execute_sql(
                    db, 'SELECT userid, dstid, MAX(id) FROM message WHERE cmd = ? '
                        'GROUP BY userid, dstid', (CMD_SINGLE_MSG,)).fetchall():
                for key in ((sender_id, dstid), (dstid, sender_id)):
                    pairs[key] = max(pairs.get(key, 0), last)
            group_last = dict(execute_sql(db, 'SELECT dstid, MAX(id) FROM message '
                                          'WHERE cmd = ? GROUP BY dstid',
                                          (CMD_ROOM_MSG,)).fetchall())
            rows = [(owner, CMD_SINGLE_MSG, dstid, last, last, 0)
                    for (owner, dstid), last in pairs.items()]
            for owner, community_id, joined in select(
                    (c.ownerid, c.dstid, c.joined_msgid) for c in db.Contact
                    if c.cate == CONTACT_COMMUNITY):
                last = group_last.get(community_id, 0)
                last = last if last > joined else 0
                rows.append((owner, CMD_ROOM_MSG, community_id, last, max(last, joined), 0))
            for start in range(0, len(rows), 200):
                execute_sql(db, *_upsert(db, rows[start:start + 200],
                                         'last_msgid = NEW(last_msgid)'), write=True)
        if rows:
            log.info('conversation list built for %d conversations', len(rows))
