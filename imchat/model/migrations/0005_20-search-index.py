"""The message search index (issue 20; docs/search.md says why it is built this way).

- `search_term` (term, msgid, conv): the inverted index the follower fills
  (imchat/service/search_index.py). Keyed by (term, msgid), so the newest matches of a
  term are read from one end of the key, and a page of 30 stops after 30, however
  common the term; a second key (term, conv, msgid) does the same inside one
  conversation (`conv`: service.search_index.conversation_key). On MySQL the term
  compares byte for byte (`utf8mb4_bin`): terms are lowercased already, and 'a' must
  not equal 'á'.
- SQLite: `search_fts`, an FTS5 table with the trigram tokenizer (any substring of
  three or more characters), rowid = msgid; its stored body also tells which terms to
  take out when a message is recalled.
- MySQL: `search_doc` (msgid, body): the text that was indexed, for the same reason.

The tables start empty; the follower indexes the messages already stored from its
position 0, in small transactions in the background, so a start is not held up by a
large table.
"""
from yoyo import step

from imchat.model.migrate import dialect


def create_search_index(conn):
    cursor = conn.cursor()
    try:
        if dialect(conn) == 'sqlite':
            cursor.execute('CREATE TABLE IF NOT EXISTS "search_term" ("term" TEXT NOT NULL, '
                           '"msgid" BIGINT NOT NULL, "conv" BIGINT NOT NULL, '
                           'PRIMARY KEY ("term", "msgid")) WITHOUT ROWID')
            cursor.execute('CREATE INDEX IF NOT EXISTS "search_term_conv" ON "search_term" '
                           '("term", "conv", "msgid")')
            cursor.execute('CREATE VIRTUAL TABLE IF NOT EXISTS "search_fts" USING '
                           "fts5(body, tokenize = 'trigram')")
        else:
            cursor.execute('CREATE TABLE IF NOT EXISTS `search_term` (`term` VARCHAR(16) '
                           'CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, '
                           '`msgid` BIGINT NOT NULL, `conv` BIGINT NOT NULL, '
                           'PRIMARY KEY (`term`, `msgid`), '
                           'KEY `search_term_conv` (`term`, `conv`, `msgid`)) ENGINE=InnoDB')
            cursor.execute('CREATE TABLE IF NOT EXISTS `search_doc` (`msgid` BIGINT NOT NULL '
                           'PRIMARY KEY, `body` TEXT CHARACTER SET utf8mb4 NOT NULL) '
                           'ENGINE=InnoDB')
    finally:
        cursor.close()


steps = [step(create_search_index)]
