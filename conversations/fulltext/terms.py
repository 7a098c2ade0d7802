"""Text into search terms, the same way on every database: what is indexed and what a query asks for.

Latin-script (and any other space-separated) words are lowercased and stemmed with the Snowball English
stemmer ("streaming", "streams" -> "stream"). Runs of CJK characters become overlapping bigrams, as
Lucene's CJK analyzer does ("打字机" -> "打字 字机"): no dictionary, and any word of two or more characters
is found inside running text, which a word segmenter (jieba) would miss when it cuts the text elsewhere.
A lone CJK character (a run of one) is kept as it is. Plain functions, no Django.
"""

import re
from dataclasses import dataclass, field
from functools import lru_cache

import snowballstemmer

# Text past this many characters of one message is not indexed (replies may hold 100,000 characters and imports
# 2,000,000): it keeps every index row small (a PostgreSQL tsvector holds 1 MB and positions up to 16,383).
INDEXED_CHARS = 20_000

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A CJK run, else a word of letters and digits that are not CJK.
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")
_STEMMER = snowballstemmer.stemmer("english")


# A "word" longer than this (a hash, base64, a run of one letter) is indexed and searched by its first
# TERM_CHARS characters: PostgreSQL refuses a tsvector word over 2,047 bytes, and such a reply then failed to save.
TERM_CHARS = 100


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A lowercased word's stem. Cached: a chat's vocabulary is small, and the pure-Python stemmer takes ~40 µs."""
    return _STEMMER.stemWord(word[:TERM_CHARS])


def _cjk_terms(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def text_terms(text: str) -> list[str]:
    """The terms a text is indexed under, in order (positions matter for phrases)."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text[:INDEXED_CHARS]):
        if match.lastgroup == "cjk":
            terms.extend(_cjk_terms(match.group()))
        else:
            terms.append(stem(match.group().lower()))
    return terms


@dataclass(frozen=True)
class Part:
    """One thing a query asks for: terms that must follow one another (one term for a plain word).
    `prefix`: the last term may be the start of a longer one (a word being typed, a single CJK character)."""

    terms: tuple[str, ...]
    prefix: bool


@dataclass
class Query:
    """What the search box asked: parts every result has (`wanted`), parts none has (`excluded`), and the
    words as typed, to mark in snippets."""

    wanted: list[Part] = field(default_factory=list)
    excluded: list[Part] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        # Exclusions alone would match nearly everything: a query needs something to find.
        return bool(self.wanted)


_QUERY_PART = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')


def _part(text: str) -> Part | None:
    matches = list(_TOKEN.finditer(text))
    if not matches:
        return None
    terms: list[str] = []
    for match in matches:
        if match.lastgroup == "cjk":
            terms.extend(_cjk_terms(match.group()))
        else:
            terms.append(stem(match.group().lower()))
    last = matches[-1]
    # A word is a prefix (stems of what is being typed); so is a single CJK character, found inside bigrams.
    prefix = last.lastgroup == "word" or len(last.group()) == 1
    return Part(tuple(terms), prefix)


def parse_query(text: str) -> Query:
    """Words (each a prefix, stemmed), "quoted phrases", and -word or -"phrase" to exclude. Several words in
    one CJK run or one hyphenated word ("打字机", "real-time") are a phrase of their terms."""
    query = Query()
    for quoted_minus, quoted, minus, bare in _QUERY_PART.findall(text[:500]):
        excluded = bool(quoted_minus or minus)
        part = _part(quoted if quoted or quoted_minus else bare)
        if part is None:
            continue
        (query.excluded if excluded else query.wanted).append(part)
        if not excluded:
            query.words.extend(match.group().lower() for match in _TOKEN.finditer(quoted or bare))
    return query


def fts5_match(query: Query) -> str:
    """The query as an SQLite FTS5 MATCH expression: "a b"* for a phrase whose last term is a prefix."""

    def phrase(part: Part) -> str:
        return '"' + " ".join(part.terms) + '"' + ("*" if part.prefix else "")

    expression = " AND ".join(phrase(part) for part in query.wanted)
    for part in query.excluded:
        expression = f"({expression}) NOT {phrase(part)}"
    return expression


def tsquery(query: Query) -> str:
    """The query as a PostgreSQL tsquery literal: terms quoted as they are (no parser, no dictionary), <-> for
    phrases, :* for a prefix, ! to exclude."""

    def phrase(part: Part) -> str:
        quoted = [f"'{term}'" for term in part.terms]
        if part.prefix:
            quoted[-1] += ":*"
        return "(" + " <-> ".join(quoted) + ")"

    return " & ".join([*(phrase(part) for part in query.wanted), *(f"!{phrase(part)}" for part in query.excluded)])


def tsvector(text: str) -> str:
    """The text's terms as a PostgreSQL tsvector literal with positions ('term':1 ...), so that PostgreSQL's own
    parser (which drops CJK characters under the C locale) is never involved. Positions stop at 16,383."""
    return " ".join(f"'{term}':{min(position, 16383)}" for position, term in enumerate(text_terms(text), 1))


def _marked_spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Where in `text` the query's words are: a word whose stem starts with a query word's stem, or a CJK string
    of the query found inside a CJK run."""
    stems = [stem(word) for word in words if not _TOKEN.fullmatch(word).lastgroup == "cjk"]
    cjk = [word for word in words if _TOKEN.fullmatch(word).lastgroup == "cjk"]
    spans = []
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "word":
            if any(stem(match.group().lower()).startswith(s) for s in stems):
                spans.append(match.span())
            continue
        for word in cjk:
            start = match.group().find(word)
            while start != -1:
                spans.append((match.start() + start, match.start() + start + len(word)))
                start = match.group().find(word, start + len(word))
    merged: list[tuple[int, int]] = []
    for left, right in sorted(spans):  # overlapping marks ("流" and "流式") become one
        if merged and left <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], right))
        else:
            merged.append((left, right))
    return merged


def snippet(text: str, words: list[str], *, width: int = 160) -> str:
    """A short piece of `text` around the first place a query word is, as HTML: escaped, with each match in
    <mark>. Built from plain text, so nothing in a message is ever taken as markup."""
    from html import escape

    text = " ".join(text[:INDEXED_CHARS].split())
    spans = _marked_spans(text, words)
    start = max(0, spans[0][0] - width // 3) if spans else 0
    if start:
        start = text.rfind(" ", 0, start) + 1 or start  # begin at a word where there is one near
    end = min(len(text), start + width)
    pieces, at = [], start
    for left, right in spans:
        if left < at or right > end:
            continue
        pieces += [escape(text[at:left]), "<mark>", escape(text[left:right]), "</mark>"]
        at = right
    pieces.append(escape(text[at:end]))
    return ("…" if start else "") + "".join(pieces) + ("…" if end < len(text) else "")
