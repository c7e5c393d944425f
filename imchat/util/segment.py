"""Cutting text into what the search index stores and what a query asks for.

Text is lowercased and cut into runs: a CJK run (Han, kana, Hangul: scripts written
without spaces) and a word run (letters and digits of any other script). Punctuation,
spaces and emoji separate runs and are never searched for.

- A CJK run is indexed by its characters and its pairs of neighbouring characters
  (unigrams and bigrams), so 上 and 天气 are found inside 今天天气很好 with one index
  lookup each; a longer query needs all its pairs (or FTS5's trigrams on SQLite).
- A word is indexed by its prefixes of 2 to `prefix_max` characters, so `meet` finds
  "meeting" with one lookup; a longer query looks up its first `prefix_max` and the
  candidates are checked (`matches`). A one-letter word is indexed as itself, and a
  one-letter query finds that word only (every word starting with "a" is no answer).

Leaf module: no Flask, no database.
"""
import operator
import re
from typing import List, NamedTuple, Set

# Han (with extensions and compatibility ideographs), kana, Hangul, CJK symbols' letters.
_CJK = ('\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af'
        '\uf900-\ufaff\U00020000-\U0003134f')
_RUN = re.compile('([{0}]+)|([^\\W_{0}]+)'.format(_CJK))
_CJK_RUN = re.compile('[{}]+'.format(_CJK))
_WORD_RUN = re.compile('[^\\W_{}]+'.format(_CJK))


class Term(NamedTuple):
    """One thing a query asks for: a CJK run (found anywhere in the text) or a word
    (found at the start of a word of the text)."""
    text: str
    cjk: bool


def runs(text: str) -> List[Term]:
    """The runs of `text`, lowercased, in order."""
    return [Term(cjk or word, bool(cjk)) for cjk, word in _RUN.findall(text.lower())]


def query_terms(query: str) -> List[Term]:
    """The distinct terms of a query, in order (an empty list when it has no letter or
    digit: only punctuation, spaces or emoji)."""
    seen, terms = set(), []
    for term in runs(query):
        if term not in seen:
            seen.add(term)
            terms.append(term)
    return terms


def index_tokens(text: str, prefix_max: int) -> Set[str]:
    """The tokens the index stores for `text`: CJK unigrams and bigrams, and the
    prefixes of each word of 2 to `prefix_max` characters (a one-letter word as itself)."""
    # The follower's own cost for each message: two regular expressions and set updates.
    text = text.lower()
    tokens = set()
    for run in _CJK_RUN.findall(text):
        tokens.update(run)
        tokens.update(map(operator.add, run, run[1:]))
    for word in _WORD_RUN.findall(text):
        if len(word) == 1:
            tokens.add(word)
        else:
            tokens.update([word[:k] for k in range(2, min(len(word), prefix_max) + 1)])
    return tokens


def term_tokens(term: Term, prefix_max: int) -> List[str]:
    """The index tokens a message must hold to match `term` (a superset of the matches:
    `matches` decides), longest first."""
    if not term.cjk:
        return [term.text[:prefix_max]]
    if len(term.text) <= 2:
        return [term.text]
    pairs = {term.text[i:i + 2] for i in range(len(term.text) - 1)}
    return sorted(pairs)


def matches(text: str, terms: List[Term]) -> bool:
    """Whether `text` holds every term: a CJK term anywhere, a word term at the start
    of a word."""
    found = runs(text)
    words = [run.text for run in found if not run.cjk]
    cjk = ' '.join(run.text for run in found if run.cjk)
    for term in terms:
        if term.cjk:
            if term.text not in cjk:
                return False
        elif len(term.text) == 1:
            if term.text not in words:
                return False
        elif not any(word.startswith(term.text) for word in words):
            return False
    return True
