"""Where a stream's next decode chain can pick up from the pictures its decoder already holds.

At ``fps:N,transport=chain`` every record carries its GOP's keyframe, the reference pictures since
and the sampled picture (:mod:`stream.packet_chain`), so that it decodes alone. A stream's
consecutive records mostly repeat each other: the chain of the sample at 0.75 s holds everything
the chain of the sample at 0.5 s held, and more. When the stream's decoder still holds the earlier
chain, only the new pictures need decoding.

:func:`resume_point` decides it from the pictures the decoder was sent since it was last flushed
(``held``, in decode order, as :func:`unit_key` keys) and the new chain's. The new chain continues
the held pictures when, walking both in decode order, every held picture either is the new chain's
next picture (the same pts and bytes) or does not appear in the new chain at all: a picture of the
GOP that a later chain leaves out is not a reference (an earlier sample), so having decoded it
changes none of the pictures that follow. Anything else (another GOP, a sample older than what was
decoded, a different picture at a pts) gives None: flush and decode the chain whole.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A picture as the decoder saw it: (pts, size in bytes, hash of the bytes).
UnitKey = tuple[int | None, int, int]


def unit_key(pts: int | None, data: bytes) -> UnitKey:
    """The key :func:`resume_point` compares pictures by (pts, size, a hash of the bytes)."""
    return pts, len(data), hash(data)


def resume_point(held: Sequence[UnitKey], chain: Sequence[UnitKey]) -> int | None:
    """The index of the first picture of ``chain`` the decoder still needs, or None.

    Args:
        held: Keys of the pictures sent to the decoder since its last flush, in decode order.
        chain: Keys of the new chain's pictures, in decode order (its sample last).

    Returns:
        ``j`` with ``0 < j < len(chain)`` when the decoder holds ``chain[:j]`` (and possibly
        non-reference pictures between them) and only ``chain[j:]`` must be sent; None when the
        chain cannot continue the held pictures, or when nothing of it is new.
    """
    if not held or not chain or held[0] != chain[0]:
        return None
    in_chain = {key[0] for key in chain}
    j = 0
    for key in held:
        if j < len(chain) and key == chain[j]:
            j += 1
        elif key[0] in in_chain:  # the same pts with other bytes, or out of order
            return None
    return j if j < len(chain) else None
