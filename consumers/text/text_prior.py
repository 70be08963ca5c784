"""Per-stream text state and the prior it puts on the votes.

Text arrives per stream from three sources: the stream's ``title`` (it does not fade), the seller's
speech as transcript pieces, and on-screen text read by OCR (both fade with ``half_life_s`` of
stream time, as visual votes do). Each piece adds

* **category mentions** (:mod:`consumers.text.category_words`): decayed weight per category;
* **title scores** (:class:`~consumers.text.text_match.TitleIndex`): decayed cosine similarity of
  the piece to each catalog item's title.

The voter asks for two factors, both exactly 1 for a stream without text:

* ``item_factor(stream, item) = 1 + title_weight * T + category_weight * C``, where ``T`` is the
  item's title evidence and ``C`` the evidence for the item's categories, each divided by the
  largest of its kind or by 1, whichever is more (little text gives a weak prior, much text a
  relative one), so both lie in [0, 1];
* ``box_factor(stream, top_categories) = 1 + box_weight * C_box`` for a detection whose top
  ``box_top_k`` categories are the named ones (the sold-item box choice).

State is bounded: ``max_streams`` streams in LRU order, idle ones (wall clock, injected) forgotten
after ``idle_timeout_s``, at most ``MAX_SNIPPETS`` evidence snippets per stream. Thread-safe (the
OCR worker adds text while the inference thread asks for factors).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.settings.text import TextSettings
from consumers.text.category_words import category_mentions
from consumers.text.text_match import TitleIndex
from stream.clock import Clock

#: Evidence snippets kept per stream (newest win).
MAX_SNIPPETS = 8
#: Items the text may put forward per stream (:meth:`TextPriors.candidates`).
MAX_CANDIDATES = 16
#: Text pieces said after the stream's latest frame, waiting for it, per stream.
MAX_PENDING = 64
#: Characters of a snippet quoted in a match event.
SNIPPET_CHARS = 80
TEXT_SOURCES = ("title", "speech", "ocr")
#: item_id -> category indices of the product, or None when unknown.
CategoryLookup = Callable[[str], Collection[int] | None]


@dataclass(frozen=True)
class Snippet:
    """One piece of text and what it pointed at (the evidence a match event quotes).

    Attributes:
        source: ``title``, ``speech`` or ``ocr``.
        text: The first ``SNIPPET_CHARS`` characters.
        pts: Stream seconds it was said or seen (None for the title).
        items: item id -> title similarity, for the items it matched.
        categories: Category indices it named.
    """

    source: str
    text: str
    pts: float | None
    items: Mapping[str, float]
    categories: frozenset[int]

    def to_dict(self, item_id: str) -> dict[str, Any]:
        return {
            "source": self.source,
            "text": self.text,
            "pts": self.pts,
            "title_score": round(float(self.items.get(item_id, 0.0)), 4),
        }


@dataclass
class _StreamText:
    last_seen: float
    last_pts: float | None = None
    categories: dict[int, float] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)
    fixed_categories: dict[int, float] = field(default_factory=dict)
    fixed_items: dict[str, float] = field(default_factory=dict)
    snippets: deque[Snippet] = field(default_factory=lambda: deque(maxlen=MAX_SNIPPETS))
    pending: list[tuple[float, str, str]] = field(default_factory=list)


def _relative(value: float, values: Collection[float]) -> float:
    top = max(values, default=0.0)
    return value / max(top, 1.0) if value > 0 else 0.0


def _faded(table: Mapping[Any, float], factor: float) -> dict[Any, float]:
    """``table`` times ``factor``, entries that fell below 1e-3 dropped."""
    return {key: value * factor for key, value in table.items() if value * factor >= 1e-3}


def _merged(decayed: Mapping[Any, float], fixed: Mapping[Any, float]) -> dict[Any, float]:
    out = dict(decayed)
    for key, value in fixed.items():
        out[key] = out.get(key, 0.0) + value
    return out


class TextPriors:
    """Text state of every stream and the vote factors it gives (rules in the module docstring).

    Args:
        settings: Validated text settings.
        classes: The detector's category names (index = category index).
        titles: item id -> catalog title (empty or missing titles never score).
        item_categories: item id -> category indices from the gallery; items without any get the
            categories their title names.
        clock: Wall clock for idle eviction.
        items: Every item of the gallery (for :meth:`candidates`); default: the titled ones.
    """

    def __init__(
        self,
        settings: TextSettings,
        classes: Sequence[str],
        titles: Mapping[str, str],
        item_categories: CategoryLookup | None,
        clock: Clock,
        items: Collection[str] = (),
    ) -> None:
        self.settings = settings
        self._classes = tuple(classes)
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: OrderedDict[str, _StreamText] = OrderedDict()
        self._item_categories = item_categories
        self.set_titles(titles, items)
        self.evicted = 0
        self.dropped = 0

    def set_titles(self, titles: Mapping[str, str], items: Collection[str] = ()) -> None:
        """Replace the catalog titles and items (after a gallery change)."""
        index = TitleIndex(titles)
        named = {item: frozenset(category_mentions(t, self._classes)) for item, t in titles.items() if t}
        with self._lock:
            self._titles, self._title_categories = index, named
            by_category: dict[int, set[str]] = {}
            for item in set(items) | set(titles):
                for category in self._categories_of(item):
                    by_category.setdefault(category, set()).add(item)
            self._items_of_category = {c: frozenset(v) for c, v in by_category.items()}

    def __len__(self) -> int:
        return len(self._streams)

    # -- input -----------------------------------------------------------------------------------
    def add(self, stream_id: str, text: str, source: str, pts: float | None = None) -> None:
        """Account one piece of text of ``stream_id``.

        A title (source ``title``), or any text without a time (``pts`` None: about the whole
        stream, such as an untimed transcript), counts at once and never fades; its evidence keeps
        its source. Speech and on-screen text with a time count from the first frame at or after
        ``pts`` (text is never used before it was said); until then it waits, at most
        ``MAX_PENDING`` pieces per stream (a full stream drops the piece said latest).
        """
        if not self.settings.enabled or source not in TEXT_SOURCES or not text:
            return
        text = text[: self.settings.max_text_chars]
        with self._lock:
            state = self._touch(stream_id)
            if source == "title" or pts is None or not math.isfinite(pts):
                self._apply(state, text, source, None)
                return
            if state.last_pts is not None and pts <= state.last_pts:
                self._apply(state, text, source, pts)
                return
            state.pending.append((pts, source, text))
            state.pending.sort(key=lambda p: p[0])
            if len(state.pending) > MAX_PENDING:
                state.pending.pop()
                self.dropped += 1

    def seen(self, stream_id: str, pts: float) -> None:
        """A frame of ``stream_id`` at ``pts``: fade the spoken and on-screen text to that time and
        count the pending text said up to it."""
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None:
                return
            self._streams.move_to_end(stream_id)
            state.last_seen = self._clock.monotonic()
            self._decay(state, pts)
            while state.pending and state.pending[0][0] <= pts:
                said, source, text = state.pending.pop(0)
                self._apply(state, text, source, said)

    def drop_stream(self, stream_id: str) -> None:
        """Forget a stream (it ended, or its partition moved away)."""
        with self._lock:
            self._streams.pop(stream_id, None)

    def evict_idle(self) -> int:
        """Forget streams idle for ``idle_timeout_s`` wall seconds; returns how many."""
        deadline = self._clock.monotonic() - self.settings.idle_timeout_s
        dropped = 0
        with self._lock:
            while self._streams:
                stream_id, state = next(iter(self._streams.items()))
                if state.last_seen > deadline:
                    break
                del self._streams[stream_id]
                dropped += 1
            self.evicted += dropped
        return dropped

    # -- factors ---------------------------------------------------------------------------------
    def has_text(self, stream_id: str) -> bool:
        """Whether ``stream_id`` holds any text evidence."""
        with self._lock:
            state = self._streams.get(stream_id)
            return state is not None and bool(state.snippets)

    def item_factor(self, stream_id: str, item_id: str) -> float:
        """The factor on a vote of ``stream_id`` for ``item_id`` (1: no text)."""
        s = self.settings
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None:
                return 1.0
            items = _merged(state.items, state.fixed_items)
            cats = _merged(state.categories, state.fixed_categories)
            title = _relative(items.get(item_id, 0.0), items.values())
            category = max((_relative(cats.get(c, 0.0), cats.values()) for c in self._categories_of(item_id)),
                           default=0.0)
        return 1.0 + s.title_weight * title + s.category_weight * category

    def strength(self, stream_id: str, item_id: str) -> float:
        """How sure the text is that ``item_id`` is the one sold, in [0, 1]: ``item_factor - 1`` over
        its largest possible value. A box the sold head did not choose votes for a named item with
        this in place of the sold probability."""
        most = self.settings.title_weight + self.settings.category_weight
        return (self.item_factor(stream_id, item_id) - 1.0) / most if most > 0 else 0.0

    def box_factor(self, stream_id: str, top_categories: Sequence[int]) -> float:
        """The factor on the votes of a detection with these top categories (best first)."""
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None or not top_categories:
                return 1.0
            cats = _merged(state.categories, state.fixed_categories)
            named = max((_relative(cats.get(c, 0.0), cats.values())
                         for c in top_categories[: self.settings.box_top_k]), default=0.0)
        return 1.0 + self.settings.box_weight * named

    def candidates(self, stream_id: str, limit: int = MAX_CANDIDATES) -> frozenset[str]:
        """The items the stream's text points at (title or category evidence), the ``limit`` with the
        largest :meth:`item_factor`; empty without text. The stage compares every crop with them too,
        so an item the seller names is weighed even when it is not among a crop's nearest images."""
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None or not state.snippets:
                return frozenset()
            named = set(state.items) | set(state.fixed_items)
            for category in set(state.categories) | set(state.fixed_categories):
                named |= self._items_of_category.get(category, frozenset())
        if len(named) <= limit:
            return frozenset(named)
        ranked = sorted(named, key=lambda item: (-self.item_factor(stream_id, item), item))
        return frozenset(ranked[:limit])

    def evidence(self, stream_id: str, item_id: str) -> list[dict[str, Any]]:
        """The snippets of ``stream_id`` that pointed at ``item_id`` (its title or its categories)."""
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None:
                return []
            mine = self._categories_of(item_id)
            return [sn.to_dict(item_id) for sn in state.snippets if item_id in sn.items or sn.categories & mine]

    # -- internals (lock held) -------------------------------------------------------------------
    def _apply(self, state: _StreamText, text: str, source: str, pts: float | None) -> None:
        """Add the mentions and title scores of ``text`` (``pts`` None: fixed, never fades)."""
        mentions = category_mentions(text, self._classes)
        scores = {i: v for i, v in self._titles.score(text).items() if v >= self.settings.min_title_score}
        if not (mentions or scores):
            return
        age = 1.0
        if pts is not None and state.last_pts is not None and pts < state.last_pts:
            age = 0.5 ** ((state.last_pts - pts) / self.settings.half_life_s)
        cats, items = (state.fixed_categories, state.fixed_items) if pts is None else (state.categories, state.items)
        for category, weight in mentions.items():
            cats[category] = cats.get(category, 0.0) + weight * age
        for item, score in scores.items():
            items[item] = items.get(item, 0.0) + score * age
        state.snippets.append(Snippet(source, text[:SNIPPET_CHARS], pts, scores, frozenset(mentions)))

    def _categories_of(self, item_id: str) -> frozenset[int]:
        known = self._item_categories(item_id) if self._item_categories is not None else None
        return frozenset(known) if known else self._title_categories.get(item_id, frozenset())

    def _touch(self, stream_id: str) -> _StreamText:
        state = self._streams.get(stream_id)
        if state is None:
            if len(self._streams) >= self.settings.max_streams:
                self._streams.popitem(last=False)
                self.evicted += 1
            state = self._streams[stream_id] = _StreamText(last_seen=self._clock.monotonic())
        else:
            self._streams.move_to_end(stream_id)
            state.last_seen = self._clock.monotonic()
        return state

    def _decay(self, state: _StreamText, pts: float) -> None:
        if state.last_pts is not None and pts > state.last_pts:
            factor = 0.5 ** ((pts - state.last_pts) / self.settings.half_life_s)
            state.categories = _faded(state.categories, factor)
            state.items = _faded(state.items, factor)
        if math.isfinite(pts):
            state.last_pts = pts if state.last_pts is None else max(pts, state.last_pts)
