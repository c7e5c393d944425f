"""What a reader sees of richer messages beside a stored message's own columns: the
quote of the message it answers (`reply`, read now, so an edit or a recall since shows)
and its reactions summarised for the reader (`reactions`: {emoji: {count, mine}}).
One query each for a whole page (history, a backlog page)."""
from typing import List

from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, reply_quote


def _messages(wires):
    return [w for w in wires if w['cmd'] in (CMD_SINGLE_MSG, CMD_ROOM_MSG)
            and not w.get('recalled')]


def add_quotes(db, wires: List[dict]) -> List[dict]:
    """In a db_session: add the `reply` quote to the messages among `wires` (read back
    from the database) that answer another, as the writer gave it when it stored them:
    a message released from the database (a gap filled, a late commit) reaches its
    recipients as the live one would have."""
    messages = _messages(wires)
    quoted = sorted({w['replyto'] for w in messages if w.get('replyto')})
    if quoted:
        found = {row[0]: reply_quote(*row) for row in db.select(
            'SELECT id, userid, media, content FROM message WHERE id IN ({})'.format(
                ', '.join(str(int(i)) for i in quoted)))}
        for wire in messages:
            if wire.get('replyto') in found:
                wire['reply'] = found[wire['replyto']]
    return wires


def decorate(db, user_id: int, wires: List[dict]) -> List[dict]:
    """In a db_session: add `reply` and `reactions` to the messages among `wires`."""
    messages = _messages(wires)
    if not messages:
        return wires
    add_quotes(db, messages)
    ids = ', '.join(str(int(w['msgid'])) for w in messages)
    # Counted here, not by GROUP BY: MySQL's utf8mb4 collations hold most emoji equal
    # ('👍' = '😂'), so only Python tells them apart.
    rows = db.select('SELECT msgid, emoji, userid FROM reaction WHERE msgid IN ({})'.format(ids))
    if rows:
        by_id = {w['msgid']: w for w in messages}
        for msgid, emoji, userid in rows:
            entry = by_id[msgid].setdefault('reactions', {}).setdefault(
                emoji, {'count': 0, 'mine': 0})
            entry['count'] += 1
            if userid == user_id:
                entry['mine'] = 1
    return wires
