"""Message search: /chat/search (docs/search.md).

A query is cut into terms (util.segment); the index (service.search_index) gives the
messages that may hold them all, newest first, already narrowed to what the searcher
may read in /chat/history: their 1:1 conversations, and the communities they are a
member of, after the message they joined at. Each candidate is then checked against
its own text (`matches`): a word term must start a word, a CJK term must appear.

One index token drives the query, read newest first from its key, so a page stops
after `limit` matches however common the token is: (term, msgid) over all
conversations, (term, conv, msgid) in one. With several tokens the rarest drives (a
bounded count of each first: one short index range each) and the others are probes of
the primary key, one a candidate. On SQLite a lone term longer than the stored
prefixes, over all conversations, is read from FTS5 (trigram) instead, which holds it
whole.
"""
import logging
from typing import List, Optional

from pony.orm import db_session

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.model.sql import execute_sql
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_RECALLED, message_wire
from imchat.service.errors import BadRequest, Forbidden, NotFound
from imchat.service.search_index import conversation_key, prefix_max, searchable_text
from imchat.util.bind import INT64_MAX
from imchat.util.segment import Term, matches, query_terms, term_tokens

log = logging.getLogger(__name__)

QUERY_MAX = 100
TERMS_MAX = 8
SEARCH_DEFAULT = 30
SEARCH_MAX = 50
# Candidates read per SQL page: a few more than a page, as a few fail the final check
# (a trigram found inside a word, not at its start).
CHUNK_FACTOR = 2
# Candidates checked per request at most, so that no query becomes a long scan: past it
# the page is shorter, and the next one starts below the last candidate returned.
CANDIDATES_MAX = 3000
# How far each token's matches are counted to find the rarest one: enough to tell a
# rare token from a common one; more would only cost time on the common ones.
RARITY_PROBE = 1000

_COLUMNS = 'm.id, m.userid, m.cmd, m.dstid, m.media, m.content, m.pic, m.url, m.memo, ' \
           'm.amount, m.createat'


class SearchRefused(BadRequest):
    """Bad search input: a field missing or malformed (`invalid`, the field named)."""

    def __init__(self, msg, field):
        super().__init__(msg, field=field, reason='invalid')


class SearchService:
    def __init__(self, db):
        self.db = db

    def search(self, user_id: int, query: str, target: Optional[int] = None,
               dstid: Optional[int] = None, before: Optional[int] = None,
               limit: Optional[int] = None) -> List[dict]:
        """The messages `user_id` may read that hold every term of `query`, newest first,
        below `before`. Raises SearchRefused (bad q, target, dstid), NotFound (no such
        user or community), Forbidden (a community the user is not in)."""
        terms = parse_query(query)
        limit = max(1, min(limit or SEARCH_DEFAULT, SEARCH_MAX))
        with db_session:
            scope, scope_params, conv = self._scope(user_id, target, dstid)
            found = self._find(terms, scope, scope_params, conv, before or INT64_MAX, limit)
        return [_result(user_id, row) for row in found]

    def _scope(self, user_id, target, dstid):
        """SQL (over `m`, the message) that keeps what `user_id` may read, its values, and
        the conversation_key of the one conversation searched (None: all)."""
        if target is None and dstid is None:
            return ('((m.cmd = ? AND (m.userid = ? OR m.dstid = ?)) OR (m.cmd = ? AND EXISTS ('
                    'SELECT 1 FROM contact c WHERE c.ownerid = ? AND c.cate = ? AND '
                    'c.dstid = m.dstid AND c.joined_msgid < m.id)))',
                    [CMD_SINGLE_MSG, user_id, user_id, CMD_ROOM_MSG, user_id, CONTACT_COMMUNITY],
                    None)
        if target is None:
            raise SearchRefused('target: give 10 (a friend) or 11 (a community) with dstid',
                                'target')
        if dstid is None:
            raise SearchRefused('dstid: give the conversation to search with target', 'dstid')
        if target == CMD_SINGLE_MSG:
            if not self.db.User.exists(id=dstid):
                raise NotFound('no user {}'.format(dstid), field='dstid',
                               reason='not_found.user')
            return ('(m.cmd = ? AND ((m.userid = ? AND m.dstid = ?) OR '
                    '(m.userid = ? AND m.dstid = ?)))',
                    [CMD_SINGLE_MSG, user_id, dstid, dstid, user_id],
                    conversation_key(CMD_SINGLE_MSG, user_id, dstid))
        if target == CMD_ROOM_MSG:
            membership = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                             dstid=dstid)
            if membership is None:
                if not self.db.Community.exists(id=dstid):
                    raise NotFound('no community {}'.format(dstid), field='dstid',
                                   reason='not_found.community')
                raise Forbidden('dstid: you are not a member of community {}'.format(dstid),
                                field='dstid', reason='community.not_member')
            return ('(m.cmd = ? AND m.dstid = ? AND m.id > ?)',
                    [CMD_ROOM_MSG, dstid, membership.joined_msgid],
                    conversation_key(CMD_ROOM_MSG, user_id, dstid))
        raise SearchRefused('target: must be 10 (a friend) or 11 (a community)', 'target')

    def _find(self, terms, scope, scope_params, conv, before, limit):
        statement = self._statement(terms, scope, scope_params, conv)
        if statement is None:
            return []
        text, params = statement
        chunk = limit * CHUNK_FACTOR
        found, checked = [], 0
        while len(found) < limit and checked < CANDIDATES_MAX:
            rows = execute_sql(self.db, text, params + [before, chunk]).fetchall()
            for row in rows:
                if matches(searchable_text(row[4], row[5], row[8]), terms):
                    found.append(row)
                    if len(found) == limit:
                        break
            checked += len(rows)
            if len(rows) < chunk:
                break
            before = rows[-1][0]
        return found

    def _statement(self, terms, scope, scope_params, conv):
        """The SQL reading one chunk of candidates below a msgid (its last two values:
        before, chunk size), newest first; None when a token has no match at all."""
        most = prefix_max(self.db)
        if (self.db.provider.dialect == 'SQLite' and conv is None and len(terms) == 1
                and len(terms[0].text) > (2 if terms[0].cjk else most)):
            source = ('search_fts JOIN message m ON m.id = search_fts.rowid '
                      'WHERE search_fts MATCH ? AND ')
            driving = ['"{}"'.format(terms[0].text)]
            driver, tokens = 'search_fts.rowid', []
        else:
            tokens = []
            for term in terms:
                tokens.extend(token for token in term_tokens(term, most) if token not in tokens)
            tokens = self._rarest_first(tokens, conv)
            if tokens is None:
                return None
            if conv is None:
                source = 'search_term d JOIN message m ON m.id = d.msgid WHERE d.term = ? AND '
                driving = [tokens.pop(0)]
            else:
                source = ('search_term d{} JOIN message m ON m.id = d.msgid '
                          'WHERE d.term = ? AND d.conv = ? AND '.format(self._conv_index()))
                driving = [tokens.pop(0), conv]
            driver = 'd.msgid'
        probes = ''.join(' AND EXISTS (SELECT 1 FROM search_term t WHERE t.term = ? AND '
                         't.msgid = m.id)' for _ in tokens)
        text = ('SELECT {} FROM {}m.media <> ?{} AND {} AND {} < ? ORDER BY {} DESC LIMIT ?'
                .format(_COLUMNS, source, probes, scope, driver, driver))
        # Values in the order of their marks: driving, media, probes, scope.
        return text, driving + [MEDIA_RECALLED] + tokens + list(scope_params)

    def _conv_index(self):
        # MariaDB, given (term, msgid) and (term, conv, msgid) for `term = ? AND conv = ?
        # ORDER BY msgid DESC`, at times reads the first and filters on conv: the walk
        # this key exists to avoid.
        return '' if self.db.provider.dialect == 'SQLite' else ' FORCE INDEX (search_term_conv)'

    def _rarest_first(self, tokens, conv):
        """`tokens`, the one with the fewest matches (in `conv`, when given) first; None
        when one has none. A lone token is not counted."""
        if len(tokens) == 1:
            return tokens
        where = 'term = ?' if conv is None else 'term = ? AND conv = ?'
        counted = []
        for order, token in enumerate(tokens):
            params = (token,) if conv is None else (token, conv)
            count = execute_sql(self.db, 'SELECT COUNT(*) FROM (SELECT 1 FROM search_term{} '
                                'WHERE {} LIMIT ?) AS found'.format(
                                    '' if conv is None else self._conv_index(), where),
                                params + (RARITY_PROBE,)).fetchone()[0]
            if count == 0:
                return None
            # Ties (past the probe's bound, all common): the longest, likely the rarest.
            counted.append((count, -len(token), order, token))
        return [token for _, _, _, token in sorted(counted)]


def parse_query(query: Optional[str]) -> List[Term]:
    """The terms of a query; raises SearchRefused when there is nothing to search for."""
    query = (query or '').strip()
    if not query:
        raise SearchRefused('q: is required', 'q')
    if len(query) > QUERY_MAX:
        raise SearchRefused('q: at most {} characters'.format(QUERY_MAX), 'q')
    terms = query_terms(query)
    if not terms:
        raise SearchRefused('q: has no letter or digit to search for (only punctuation, '
                            'spaces or emoji)', 'q')
    if len(terms) > TERMS_MAX:
        raise SearchRefused('q: at most {} words'.format(TERMS_MAX), 'q')
    return terms


def _result(user_id, row):
    wire = message_wire(*row)
    cmd, sender, dstid = row[2], row[1], row[3]
    wire['target'] = cmd
    wire['peer'] = dstid if cmd == CMD_ROOM_MSG or sender == user_id else sender
    return wire
