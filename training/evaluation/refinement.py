"""Offline refinement of per-video predictions across many replayed videos.

When several videos claim the same item, only the strongest claims keep it; the weaker
ones move on to their next candidate. This is deferred acceptance: videos propose their
candidates in rank order, every item holds at most ``capacity`` claims, keeping the
strongest, and a rejected video proposes its next candidate. A video that runs out of
candidates keeps its first choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One ranked guess for a video.

    Attributes:
        item_id: The catalog item.
        strength: How strongly the video claims it (e.g. matched seconds, or a score); higher wins.
    """

    item_id: str
    strength: float


def refine_assignments(
    candidates: Mapping[str, Sequence[Candidate]],
    capacity: int = 1,
) -> dict[str, str | None]:
    """Assign one item per video so that no item is claimed by more than ``capacity`` videos.

    Args:
        candidates: video id -> candidates, best first (the order is the video's preference).
        capacity: How many videos may keep the same item.

    Returns:
        video id -> chosen item id; ``None`` for a video without candidates. A video whose every
        candidate was taken by stronger claims keeps its first candidate.

    Raises:
        ValueError: if ``capacity`` < 1.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    next_choice = {video: 0 for video in candidates}
    holders: dict[str, list[tuple[float, str]]] = {}
    chosen: dict[str, str | None] = {}
    free = sorted(video for video, ranked in candidates.items() if ranked)
    for video, ranked in candidates.items():
        if not ranked:
            chosen[video] = None
    while free:
        video = free.pop(0)
        ranked = candidates[video]
        position = next_choice[video]
        if position >= len(ranked):
            chosen[video] = ranked[0].item_id
            continue
        next_choice[video] = position + 1
        claim = ranked[position]
        held = holders.setdefault(claim.item_id, [])
        held.append((claim.strength, video))
        # strongest first; equal strength: the video id decides, so the result is deterministic
        held.sort(key=lambda entry: (-entry[0], entry[1]))
        if len(held) > capacity:
            _, rejected = held.pop()
            free.append(rejected)
            free.sort()
    for item_id, held in holders.items():
        for _, video in held:
            chosen[video] = item_id
    return chosen
