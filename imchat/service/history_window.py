"""/chat/history's `after` and `around` (PROTOCOL.md, "Search"): a page of a
conversation that follows a message, or is centred on one, so that a search result
opens in place with its neighbours.

The conversation and who may read it come from the caller (`conversation`: a function
of (user_id, cmd, dstid) giving a Pony query of the messages, raising NotFound or
Forbidden; MessageReader.conversation_query), so this module holds no permission rule.
"""
from typing import Callable, List, Optional

from pony.orm import db_session, desc

from imchat.service.errors import BadRequest

HISTORY_DEFAULT = 30


def history_window(conversation: Callable, user_id: int, cmd: int, dstid: int,
                   before: Optional[int] = None, after: Optional[int] = None,
                   around: Optional[int] = None, limit: Optional[int] = None,
                   most: int = 100) -> List[dict]:
    """Up to `limit` messages, oldest first: those right after `after`, or half before
    `around` and the rest from it on (from the other side where one side has too few).
    Raises BadRequest (more than one of
    before, after and around), and what `conversation` raises."""
    given = [name for name, value in (('before', before), ('after', after),
                                      ('around', around)) if value is not None]
    if len(given) > 1:
        raise BadRequest('{}: give only one of before, after and around'.format(given[1]),
                         field=given[1])
    limit = max(1, min(limit or HISTORY_DEFAULT, most))
    with db_session:
        query = conversation(user_id, cmd, dstid)
        if after is not None:
            rows = query.filter(lambda m: m.id > after).order_by(lambda m: m.id)[:limit]
            return [row.to_wire() for row in rows]
        older = query.filter(lambda m: m.id < around).order_by(
            lambda m: desc(m.id))[:limit // 2]
        newer = query.filter(lambda m: m.id >= around).order_by(
            lambda m: m.id)[:limit - len(older)]
        if len(older) == limit // 2 and len(older) + len(newer) < limit:
            # Near the newest end: the page fills from below.
            older = query.filter(lambda m: m.id < around).order_by(
                lambda m: desc(m.id))[:limit - len(newer)]
        return [row.to_wire() for row in list(reversed(older)) + list(newer)]
