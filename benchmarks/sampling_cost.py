"""Ingest cost per stream: CPU seconds per second of 1080p video for each sampling, before and now.

The clip: real camera footage (``tests/data/car-detection-14s.mp4``) upscaled to 1920x1080, played
at 25 frames/s with a keyframe every 2 s (a common live-encoder setting), 6 Mb/s. Each sampling reads
the whole clip through :class:`stream.frames.FrameReader` as fast as it can; the CPU time of the
process per second of video gives the streams one core can ingest (``1 / cpu_per_video_s``).

Ways, side by side in one run (median of ``--repeats``):

* ``before``: fps sampling decodes every frame and encodes the samples as JPEG through a PIL image
  (the reader as it was before the GOP-tail skipping; reproduced here by switching the two parts back);
* ``now``: the tail of each GOP after the last frame the grid needs is not decoded
  (:class:`stream.frames.GopSkipper`), nor are the non-reference B-frames that fall between the
  grid's slots (:mod:`stream.h264_nal`; x264 makes about 40 % of pictures such), and the JPEG comes
  from OpenCV.

Keyframe sampling decodes nothing and is the same both ways.

Usage::

    python benchmarks/sampling_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import stream.frames as frames_module  # noqa: E402
from stream.encode import write_video  # noqa: E402
from stream.frames import FrameReader  # noqa: E402
from stream.sampling import SamplingSpec  # noqa: E402

SOURCE = REPO / "tests" / "data" / "car-detection-14s.mp4"


def make_clip(path: Path, frames: int, size: tuple[int, int], bitrate: int, b_frames: int = 2) -> float:
    """Write the clip (the source played forwards and backwards until ``frames`` are reached, so the
    motion never jumps); returns its duration in seconds."""
    import av
    import cv2

    with av.open(str(SOURCE)) as container:
        source = [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_CUBIC)
                  for f in container.decode(video=0)]
    cycle = source + source[-2:0:-1]
    out = [cycle[i % len(cycle)] for i in range(frames)]
    write_video(path, out, fps=25.0, gop=50, bitrate=bitrate, b_frames=b_frames)
    return len(out) / 25.0


def _pil_jpeg(frame: Any, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class _Before:
    """Switches the reader back to decoding every frame and encoding JPEG through PIL."""

    def __enter__(self) -> None:
        self._jpeg, self._sampled = frames_module.encode_jpeg, frames_module.GopSkipper.sampled
        self._disposable = frames_module.is_disposable
        frames_module.encode_jpeg = _pil_jpeg  # type: ignore[assignment]
        frames_module.GopSkipper.sampled = lambda *args, **kwargs: None  # type: ignore[method-assign]
        frames_module.is_disposable = lambda data, length_size: False

    def __exit__(self, *exc: object) -> None:
        frames_module.encode_jpeg = self._jpeg  # type: ignore[assignment]
        frames_module.GopSkipper.sampled = self._sampled  # type: ignore[method-assign]
        frames_module.is_disposable = self._disposable


def cpu_per_video_second(clip: Path, sampling: str, duration_s: float) -> tuple[float, int]:
    """CPU seconds of this process per second of video, and the frames forwarded."""
    start = time.process_time()
    reader = FrameReader("bench", clip, SamplingSpec.parse(sampling))
    count = sum(1 for _ in reader)
    return (time.process_time() - start) / duration_s, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=750, help="frames of the clip (25 a second)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--bitrate", type=int, default=6_000_000)
    parser.add_argument("--samplings", default="keyframes,fps:1,fps:4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    results: dict[str, Any] = {"size": args.size, "samplings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        duration = make_clip(clip, args.frames, (width, height), args.bitrate)
        results["video_s"] = duration
        for sampling in args.samplings.split(","):
            row: dict[str, Any] = {}
            for way in ("before", "now"):
                runs = []
                for _ in range(args.repeats):
                    if way == "before":
                        with _Before():
                            runs.append(cpu_per_video_second(clip, sampling, duration))
                    else:
                        runs.append(cpu_per_video_second(clip, sampling, duration))
                cpu = statistics.median(r[0] for r in runs)
                row[way] = {"cpu_s_per_video_s": round(cpu, 4), "streams_per_core": round(1.0 / cpu, 1),
                            "frames": runs[0][1]}
            row["gain"] = round(row["before"]["cpu_s_per_video_s"] / row["now"]["cpu_s_per_video_s"], 2)
            results["samplings"][sampling] = row
    print(f"{args.size}, {duration:.0f} s at 25 fps, keyframe every 2 s; median of {args.repeats} runs")
    print(f"{'sampling':<10} {'before: streams/core':>21} {'now: streams/core':>18} {'gain':>6}")
    for sampling, row in results["samplings"].items():
        print(f"{sampling:<10} {row['before']['streams_per_core']:>21} {row['now']['streams_per_core']:>18} "
              f"{row['gain']:>5}x")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
