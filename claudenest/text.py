"""Text to terms, shared by the hashing embedder and the keyword index of the shared context.

One tokenizer for both, so an identifier such as ``billing/invoice_service.py`` is the same terms wherever it is
looked for: kept whole, and split into its parts (``billing``, ``invoice``, ``service``, ``py``).
"""

from __future__ import annotations

import functools
import re

# Function words that carry no topic. Without corpus statistics (no IDF) they would otherwise dominate short
# queries ("how do we ...", "where is the ...").
_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else ever every few for from
    further get gets got had has have having he her here hers him his how however i if in into is it its itself
    just let lets like may me might more most much must my no nor not now of off on once one only or other our
    ours out over own per please same shall she should so some such than that the their theirs them then there
    these they this those through to too under until up upon us use used using very via was way we were what
    whatever when where whether which while who whom whose why will with within without would yet you your yours
    anyone anything someone something somewhere thing things instead already still know need needs want
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_RAW_TOKEN = re.compile(r"[\w./\\:#@+-]+")
_EDGE_PUNCT = "./\\:#@+-_"
_SEPARATORS = re.compile(r"[./\\:#@+_-]+")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifier(token: str) -> list[str]:
    """Lower-cased parts of an identifier or path: ``getHTTPResponse`` -> get, http, response;
    ``billing/invoice_service.py`` -> billing, invoice, service, py. A plain word gives itself."""
    parts: list[str] = []
    for piece in _SEPARATORS.split(token):
        if piece:
            parts.extend(p.lower() for p in _CAMEL_PARTS.findall(piece))
    return parts


def tokenize(text: str) -> list[str]:
    """Word tokens in text order: each plain word once; each compound identifier whole, then its parts."""
    tokens: list[str] = []
    for raw in _RAW_TOKEN.findall(text):
        raw = raw.strip(_EDGE_PUNCT)
        if not raw:
            continue
        parts = split_identifier(raw)
        whole = raw.lower()
        if len(parts) > 1:
            tokens.append(whole)
            tokens.extend(parts)
        elif parts:
            tokens.append(parts[0])
        else:  # non-ASCII letters only: keep the word itself
            tokens.append(whole)
    return tokens


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English suffix stripper (plural, -ing, -ed, trailing e): retries/retry, caching/cached/cache."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("i") and len(word) > 3:  # retried -> retri -> retry
        word = word[:-1] + "y"
    return word


def index_terms(text: str) -> list[str]:
    """The terms the keyword index stores and searches for: tokens, stop words dropped, stemmed, in text order."""
    return [stem(t) for t in tokenize(text) if t not in STOP_WORDS]
