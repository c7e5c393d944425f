"""The richer fields of the messages a batch stores (`replyto`, `forwarded`,
`mentions`: service.rich_frame.Extras), kept apart from the writer's INSERT: that
statement and its rows stay as they were, and only a message that has such fields costs
one UPDATE more, in the same transaction (service.writer)."""
from typing import List, Sequence, Tuple

from imchat.protocol import rich_fields


def rich_statements(accepted: Sequence, ids: Sequence) -> List[Tuple[str, list]]:
    """[(text, values)] setting the richer columns of the accepted frames that have any;
    `ids` their message ids (model.sql.MessageId values on MySQL)."""
    statements = []
    for pending, msgid in zip(accepted, ids):
        extra = pending.frame.extra
        if extra is not None:
            statements.append(('UPDATE message SET replyto = ?, forwarded = ?, mentions = ? '
                               'WHERE id = ?', [extra.replyto, extra.forwarded,
                                                extra.stored_mentions(), msgid]))
    return statements


def rich_wire(wire: dict, extra) -> dict:
    """A stored message's wire with its richer fields and the quote it answers."""
    rich_fields(wire, 0, extra.replyto, extra.forwarded, extra.stored_mentions())
    if extra.reply is not None:
        wire['reply'] = extra.reply
    return wire
