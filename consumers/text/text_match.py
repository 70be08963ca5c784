"""Matching free text (Chinese and English) against catalog item titles.

Text is normalised (Unicode NFKC, lower case, punctuation to spaces) and cut into terms: every
pair of neighbouring CJK characters (character bigrams; a lone CJK character is its own term),
every Latin word of two letters or more, and every run of two digits or more (model numbers,
"26号链接"). A :class:`TitleIndex` weighs the terms by TF-IDF over the catalog's titles and scores
a text against every title by cosine similarity, as the strongest teams of the Tianchi live-product
challenge did (learned sentence encoders did worse there, and none installs here).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

#: CJK unified ideographs (basic block and extension A) and the compatibility block.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[a-z]+|[0-9]+")
_NOT_TEXT = re.compile(rf"[^{_CJK}a-z0-9]+")


def normalise(text: str) -> str:
    """NFKC, lower case, and everything but CJK characters, Latin letters and digits as one space."""
    return _NOT_TEXT.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def terms(text: str) -> list[str]:
    """The matching terms of ``text`` in order (see the module docstring)."""
    out: list[str] = []
    for token in _TOKEN.findall(normalise(text)):
        if token[0].isascii():
            if len(token) >= 2:
                out.append(token)
        elif len(token) == 1:
            out.append(token)
        else:
            out.extend(token[i : i + 2] for i in range(len(token) - 1))
    return out


def _unit(weights: Mapping[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return {t: w / norm for t, w in weights.items()} if norm > 0 else {}


class TitleIndex:
    """TF-IDF vectors of item titles; :meth:`score` gives each item's cosine similarity to a text.

    Args:
        titles: item id -> title; empty titles are left out (such items never score).
    """

    def __init__(self, titles: Mapping[str, str]) -> None:
        counted = {item: Counter(terms(title)) for item, title in titles.items()}
        counted = {item: tf for item, tf in counted.items() if tf}
        documents = Counter(t for tf in counted.values() for t in tf)
        n = len(counted)
        # Smoothed IDF (1 + ln((1 + n) / (1 + df))): a term in every title still counts a little.
        self._idf = {t: 1.0 + math.log((1 + n) / (1 + df)) for t, df in documents.items()}
        self._vectors = {
            item: _unit({t: (1.0 + math.log(c)) * self._idf[t] for t, c in tf.items()}) for item, tf in counted.items()
        }
        self._postings: dict[str, list[str]] = {}
        for item, vector in self._vectors.items():
            for term in vector:
                self._postings.setdefault(term, []).append(item)

    def __len__(self) -> int:
        return len(self._vectors)

    def vector(self, text: str) -> dict[str, float]:
        """The unit TF-IDF vector of ``text`` over the titles' vocabulary (unknown terms dropped)."""
        tf = Counter(t for t in terms(text) if t in self._idf)
        return _unit({t: (1.0 + math.log(c)) * self._idf[t] for t, c in tf.items()})

    def score(self, text: str, items: Iterable[str] | None = None) -> dict[str, float]:
        """item id -> cosine similarity in (0, 1] for the items sharing a term with ``text``.

        Args:
            text: Any text (a transcript piece, OCR lines, a stream title).
            items: Restrict to these items (a seller's catalog); None: every titled item.
        """
        query = self.vector(text)
        allowed = None if items is None else set(items)
        out: dict[str, float] = {}
        for term, weight in query.items():
            for item in self._postings.get(term, ()):
                if allowed is None or item in allowed:
                    out[item] = out.get(item, 0.0) + weight * self._vectors[item][term]
        return out
