"""What a reader sees of richer messages beside a stored message's own columns: the
quote of the message it answers (`reply`, read now, so an edit or a recall since shows)
and its reactions summarised for the reader (`reactions`: {emoji: {count, mine}}).
One query each for a whole page (history, a backlog page)."""
from typing import List

from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, reply_quote


def decorate(db, user_id: int, wires: List[dict]) -> List[dict]:
    """In a db_session: add `reply` and `reactions` to the messages among `wires`."""
    messages = [w for w in wires if w['cmd'] in (CMD_SINGLE_MSG, CMD_ROOM_MSG)
                and not w.get('recalled')]
    if not messages:
        return wires
    quoted = sorted({w['replyto'] for w in messages if w.get('replyto')})
    if quoted:
        found = {row[0]: reply_quote(*row) for row in db.select(
            'SELECT id, userid, media, content FROM message WHERE id IN ({})'.format(
                ', '.join(str(int(i)) for i in quoted)))}
        for wire in messages:
            if wire.get('replyto') in found:
                wire['reply'] = found[wire['replyto']]
    ids = ', '.join(str(int(w['msgid'])) for w in messages)
    rows = db.select('SELECT msgid, emoji, COUNT(*), SUM(CASE WHEN userid = $user_id '
                     'THEN 1 ELSE 0 END) FROM reaction WHERE msgid IN ({}) '
                     'GROUP BY msgid, emoji'.format(ids))
    if rows:
        by_id = {w['msgid']: w for w in messages}
        for msgid, emoji, count, mine in rows:
            by_id[msgid].setdefault('reactions', {})[emoji] = {'count': int(count),
                                                               'mine': int(mine or 0)}
    return wires
