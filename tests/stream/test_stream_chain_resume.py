"""A stream's decoder continues its previous decode chain when it can, with the same pictures."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from stream.chain_resume import resume_point, unit_key
from stream.decode import PacketDecoder
from stream.frames import iter_frame_packets

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo" / "video" / "v000000.mp4"

K, P1, P2, P3 = (unit_key(pts, bytes([pts]) * 10) for pts in (0, 1, 2, 3))
S1 = unit_key(11, b"sample one")  # a sample that is not a reference: later chains leave it out


@pytest.mark.parametrize(
    ("held", "chain", "expected"),
    [
        ([K, P1], [K, P1, P2, P3], 2),  # the next chain of the GOP: send P2, P3
        ([K, P1, S1], [K, P1, P2], 2),  # the earlier non-reference sample is not in the chain: skipped
        ([K, S1, P1], [K, P1, P2], 2),
        ([], [K, P1], None),  # a flushed decoder
        ([K, P1], [unit_key(0, b"another keyframe"), P1], None),  # another GOP
        ([K, P1, P2], [K, P1], None),  # a sample older than what was decoded
        ([K, P1, P2], [K, P1, P2], None),  # nothing new
        ([K, unit_key(1, b"other bytes")], [K, P1, P2], None),  # the same pts, other bytes
        ([K, P2], [K, P1, P2, P3], None),  # P1 is needed before P2, which was sent without it
    ],
)
def test_where_a_chain_continues_the_held_pictures(held: list, chain: list, expected: int | None) -> None:
    assert resume_point(held, chain) == expected


def _orders(count: int) -> dict[str, list[int]]:
    return {"in order": list(range(count)), "every other": list(range(0, count, 2)),
            "a random half (shedding)": sorted(random.Random(7).sample(range(count), count // 2)),
            "backwards": list(range(count))[::-1]}


@pytest.mark.parametrize(("video", "resumes"), [(DEMO, True), (DATA / "car-detection-14s.mp4", True),
                                                (DATA / "bottle-detection.mp4", False)],
                         ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_resumed_chains_give_the_pictures_of_a_fresh_decoder(video: Path, resumes: bool) -> None:
    """fps:4 chains decoded one after another by one decoder, in several orders, against a fresh
    decoder for each. The bottle clip's samples only come out when the decoder is drained (picture
    reordering), so its chains are always decoded whole."""
    packets = list(iter_frame_packets("s", video, "fps:4,transport=chain"))
    assert len(packets) >= 8 and all(p.chain for p in packets)
    fresh = [PacketDecoder().decode(p) for p in packets]
    for name, order in _orders(len(packets)).items():
        decoder = PacketDecoder()
        for i in order:
            assert np.array_equal(decoder.decode(packets[i]), fresh[i]), f"{name}: picture {i} differs"
        if name == "in order":
            assert (decoder.resumed_units > 0) == resumes
        if name == "backwards":
            assert decoder.resumed_units == 0  # each chain is older than the one before: decoded whole


@pytest.mark.parametrize("b_frames", [0, 2])
def test_clips_with_and_without_b_frames_decode_the_same_resumed(tmp_path: Path, b_frames: int) -> None:
    """Without B-frames every sample comes out at once, so every chain after the first of its GOP
    continues the previous one; with B-frames the chains that cannot are decoded whole."""
    from stream.encode import write_video

    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    clip = tmp_path / f"b{b_frames}.mp4"
    write_video(clip, (np.roll(base, 3 * t, axis=1) for t in range(50)), fps=25.0, gop=25, b_frames=b_frames)
    packets = list(iter_frame_packets("s", clip, "fps:4,transport=chain"))
    decoder = PacketDecoder()
    for packet in packets:
        assert np.array_equal(decoder.decode(packet), PacketDecoder().decode(packet))
    if b_frames == 0:
        assert decoder.resumed_units > 0
