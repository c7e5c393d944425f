"""Pony entities, declared on a fresh `Database` per app.

A Pony `Database` can be bound once, so each `create_app` gets its own: tests build
many apps on many throw-away databases, and production builds one. Services reach
the entities as attributes of that database (`db.User`). This module only declares
columns, their limits (which ctrl checks input against) and small `to_dict` views;
services own every transaction, and the SQL the writer sends itself lives in
`model.sql` and `model.stream`.
"""
from pony.orm import Database, Optional, PrimaryKey, Required, composite_index, composite_key

from imchat.model.safety import define_safety_entities
from imchat.protocol import (CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED, message_wire,
                             rich_fields)

SEX_WOMEN = 'W'
SEX_MEN = 'M'
SEX_UNKNOWN = 'U'
SEXES = (SEX_WOMEN, SEX_MEN, SEX_UNKNOWN)

# Contact.cate: what the contact's dstid names.
CONTACT_FRIEND = 1
CONTACT_COMMUNITY = 2

MOBILE_MAX = 20
NICKNAME_MAX = 40
AVATAR_MAX = 500
MEMO_MAX = 140
COMMUNITY_NAME_MAX = 30
CONTENT_MAX = 4000
URL_MAX = 1000
# Stored mention lists: up to 50 ids of up to 19 digits (service.rich_frame bounds them).
MENTIONS_MAX = 1000
# Bytes enough for one emoji of a few code points (a family, a flag with tags).
EMOJI_MAX = 32


class StatlessDatabase(Database):
    """Pony's Database without its per-SQL query statistics.

    Pony keeps, for each greenlet (its `_dblocal`), a QueryStat per distinct SQL text
    run (`Database._update_local_stat`), never emptied unless someone calls
    merge_local_stats. The message writer inlines each batch's values into its SQL on
    MySQL (model.stream), so every batch is a new text, and the writer's greenlet lives
    as long as the process: memory grew by megabytes a minute under steady traffic.
    Nothing here reads those statistics; `last_sql` (for error messages) is kept."""

    def _update_local_stat(self, sql, query_start_time):
        self._dblocal.last_sql = sql


def define_database() -> Database:
    """A new, unbound Database with every entity declared on it."""
    db = StatlessDatabase()

    class User(db.Entity):
        _table_ = 'user'
        id = PrimaryKey(int, auto=True, size=64)
        mobile = Required(str, MOBILE_MAX, unique=True)
        passwd = Required(str, 200)
        nickname = Required(str, NICKNAME_MAX)
        avatar = Optional(str, AVATAR_MAX)
        sex = Required(str, 2, default=SEX_UNKNOWN)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)
        # Highest message id written to any of this user's connections; a connection
        # that does not say what it already has (`since`) resumes after it.
        synced_msgid = Required(int, size=64, default=0)

        def to_public(self, online=False):
            return {'id': self.id, 'nickname': self.nickname, 'avatar': self.avatar,
                    'sex': self.sex, 'memo': self.memo, 'online': int(bool(online))}

        def to_own(self, online=False):
            view = self.to_public(online)
            view['mobile'] = self.mobile
            view['createat'] = self.createat
            return view

    class Token(db.Entity):
        _table_ = 'token'
        # SHA-256 of the token: the database never holds a usable token.
        key = PrimaryKey(str, 64)
        userid = Required(int, size=64, index=True)
        createat = Required(int, size=64)
        expireat = Required(int, size=64)

    class Contact(db.Entity):
        _table_ = 'contact'
        id = PrimaryKey(int, auto=True, size=64)
        ownerid = Required(int, size=64)
        dstid = Required(int, size=64)
        cate = Required(int)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)
        # For a community membership: the highest message id when the member joined;
        # they receive the group's messages after it.
        joined_msgid = Required(int, size=64, default=0)
        composite_key(ownerid, cate, dstid)
        composite_index(cate, dstid)

    class Community(db.Entity):
        _table_ = 'community'
        id = PrimaryKey(int, auto=True, size=64)
        name = Required(str, COMMUNITY_NAME_MAX)
        ownerid = Required(int, size=64, index=True)
        icon = Optional(str, AVATAR_MAX)
        cate = Required(int, default=0)
        memo = Optional(str, MEMO_MAX)
        createat = Required(int, size=64)

        def to_dict(self):
            return {'id': self.id, 'name': self.name, 'ownerid': self.ownerid,
                    'icon': self.icon, 'cate': self.cate, 'memo': self.memo,
                    'createat': self.createat}

    class Message(db.Entity):
        _table_ = 'message'
        id = PrimaryKey(int, auto=True, size=64)
        userid = Required(int, size=64)
        cmd = Required(int)
        dstid = Required(int, size=64)
        media = Required(int)
        content = Optional(str, CONTENT_MAX)
        pic = Optional(str, URL_MAX)
        url = Optional(str, URL_MAX)
        memo = Optional(str, MEMO_MAX)
        amount = Required(int, size=64, default=0)
        createat = Required(int, size=64)
        # The sender's own id for the message when it can serve as an idempotency key
        # (see service.frame.idempotency_key); NULL otherwise. Unique for a sender,
        # compared byte for byte (migration 0003): the writer relies on it.
        clientid = Optional(str, 64, nullable=True)
        # Richer messages (issue 23; migrations 0009-0012). Set after the batch's INSERT,
        # and only for the messages that have them, so a plain message writes none.
        # When the text was last edited (ms; 0: never); the earlier texts are not kept.
        editedat = Required(int, size=64, default=0)
        # The message this one answers (0: none), in the same conversation.
        replyto = Required(int, size=64, default=0)
        # 1: passed on from another conversation (which is never named).
        forwarded = Required(int, default=0)
        # Community messages: the member ids called, joined by commas; '-1' for everyone.
        mentions = Optional(str, MENTIONS_MAX)
        composite_index(cmd, dstid, id)
        composite_index(userid, id)
        composite_key(userid, clientid)

        def to_wire(self):
            wire = message_wire(self.id, self.userid, self.cmd, self.dstid, self.media,
                                self.content, self.pic, self.url, self.memo, self.amount,
                                self.createat)
            if self.media != MEDIA_RECALLED and self.cmd in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
                rich_fields(wire, self.editedat, self.replyto, self.forwarded, self.mentions)
            return wire

    class Reaction(db.Entity):
        """One person's reaction to one message (one emoji each: a new one replaces it).
        The events that set and remove them are rows of the message stream (cmd 19)."""
        _table_ = 'reaction'
        msgid = Required(int, size=64)
        userid = Required(int, size=64)
        emoji = Required(str, EMOJI_MAX)
        createat = Required(int, size=64)
        PrimaryKey(msgid, userid)

    class Upload(db.Entity):
        """One stored upload, for the daily quota and for removing unreferenced files."""
        _table_ = 'upload'
        id = PrimaryKey(int, auto=True, size=64)
        name = Required(str, 64, index=True)
        userid = Required(int, size=64)
        size = Required(int, size=64)
        createat = Required(int, size=64)
        composite_index(userid, createat)

    class Conversation(db.Entity):
        """One user's view of one conversation (target 10: a friend, 11: a community),
        kept in the same transaction as the messages, so the chat list is one indexed
        query however many messages are stored."""
        _table_ = 'conversation'
        ownerid = Required(int, size=64)
        target = Required(int)
        dstid = Required(int, size=64)
        last_msgid = Required(int, size=64, default=0)
        # Read up to here (only ever moves forward); unread counts others' messages after it.
        readmsgid = Required(int, size=64, default=0)
        unread = Required(int, size=64, default=0)
        # The key is the primary key (migration 0004): InnoDB finds the row the writer's
        # upsert updates in its clustered index, without inserting one and taking it back.
        # No index on (ownerid, last_msgid): each message would move its rows in it
        # (migration 0002). The list sorts one user's rows, found by this key.
        PrimaryKey(ownerid, target, dstid)
        composite_index(target, dstid)

    class Stream(db.Entity):
        # The position of a dense sequence: `message` is the highest message id taken.
        # Ids are taken by moving it inside the inserting transaction (see
        # insert_messages), so they commit in id order across processes.
        _table_ = 'stream'
        name = PrimaryKey(str, 32)
        pos = Required(int, size=64)

    class Presence(db.Entity):
        # Who is connected to which node, for `online` across nodes; a row counts only
        # until `expireat` (ms), which the node refreshes while it lives.
        _table_ = 'presence'
        userid = Required(int, size=64)
        node = Required(str, 100)
        expireat = Required(int, size=64, index=True)
        PrimaryKey(userid, node)

    class LimitEvent(db.Entity):
        # One counted event (a failed login) of a limit shared by every node when there
        # is no Redis to count in (service.shared_limits).
        _table_ = 'limit_event'
        id = PrimaryKey(int, auto=True, size=64)
        key = Required(str, 200)
        at = Required(int, size=64)
        composite_index(key, at)

    # Who may reach whom (issue 22): requests, blocks, mutes, roles, reports, bans.
    define_safety_entities(db)
    return db
