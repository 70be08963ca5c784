"""fps sampling end to end: JPEG made at the ingest against decode chains decoded at the consumer.

The clip is the one of ``benchmarks/sampling_cost.py`` (real camera footage upscaled, 25 frames/s,
a keyframe every 2 s, x264 with ``--b-frames`` B-frames, 2 by default). For each ``fps:N`` the ways
run side by side in one run (median of ``--repeats``):

* ``jpeg`` (the default): the ingest decodes up to each sample and encodes it as JPEG; the
  consumer decodes the JPEG;
* ``chain`` (``fps:N,transport=chain``): the ingest demuxes only and forwards each sample's decode
  chain (:mod:`stream.packet_chain`); the consumer's decoder continues from the pictures it still
  holds where it can (:mod:`stream.chain_resume`; on a GPU, NVDEC would decode);
* ``chain_whole``: the same records, each chain decoded whole (``resume_chains=False``).

Figures: ingest CPU per second of video (as streams per core), consumer decode CPU per sample,
the two added per sample, and the bytes a sample puts on the ``frames`` topic. CPU is the
process's (``time.process_time``), so decoder threads count.

Usage::

    python benchmarks/chain_transport.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from sampling_cost import make_clip  # noqa: E402

from stream.decode import PacketDecoder  # noqa: E402
from stream.frames import FrameReader  # noqa: E402
from stream.packet import FramePacket  # noqa: E402
from stream.sampling import SamplingSpec  # noqa: E402

WAYS = ("jpeg", "chain", "chain_whole")


def one_run(clip: Path, spec: str, resume_chains: bool = True) -> dict[str, float]:
    """Ingest the clip with ``spec``, then decode every packet in order as a consumer would (one
    decoder for the stream, as the stage keeps).

    Returns:
        ``ingest_cpu_s``, ``decode_cpu_s`` (all samples), ``samples`` and ``bytes`` (all records).
    """
    start = time.process_time()
    packets = list(FrameReader("bench", clip, SamplingSpec.parse(spec)))
    ingest = time.process_time() - start
    records = [p.to_record() for p in packets]
    decoder = PacketDecoder(resume_chains=resume_chains)
    start = time.process_time()
    for record in records:
        decoder.decode(FramePacket.from_record(*record))
    decode = time.process_time() - start
    return {"ingest_cpu_s": ingest, "decode_cpu_s": decode, "samples": len(packets),
            "bytes": sum(len(value) for _, value, _ in records)}


def measure(clip: Path, duration_s: float, fps: str, repeats: int) -> dict[str, Any]:
    """The ways of ``fps:<fps>``, alternating, ``repeats`` times; medians."""
    runs: dict[str, list[dict[str, float]]] = {w: [] for w in WAYS}
    for _ in range(repeats):
        for way in WAYS:
            spec = f"fps:{fps}" + (",transport=chain" if way.startswith("chain") else "")
            runs[way].append(one_run(clip, spec, resume_chains=way != "chain_whole"))
    row: dict[str, Any] = {}
    for way, done in runs.items():
        samples = done[0]["samples"]
        ingest = statistics.median(r["ingest_cpu_s"] for r in done)
        decode_ms = statistics.median(r["decode_cpu_s"] for r in done) / samples * 1000
        ingest_ms = ingest / samples * 1000
        row[way] = {
            "samples": samples,
            "ingest_streams_per_core": round(duration_s / ingest, 1),
            "ingest_ms_per_sample": round(ingest_ms, 2),
            "consumer_decode_ms_per_sample": round(decode_ms, 2),
            "total_ms_per_sample": round(ingest_ms + decode_ms, 2),
            "kib_per_sample": round(done[0]["bytes"] / samples / 1024, 1),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=750, help="frames of the clip (25 a second)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--bitrate", type=int, default=6_000_000)
    parser.add_argument("--fps", default="1,4", help="sampling rates, comma-separated")
    parser.add_argument("--b-frames", type=int, default=2, help="most consecutive B-frames of the clip")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    results: dict[str, Any] = {"size": args.size, "b_frames": args.b_frames, "rates": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        duration = make_clip(clip, args.frames, (width, height), args.bitrate, args.b_frames)
        results["video_s"] = duration
        for fps in args.fps.split(","):
            results["rates"][f"fps:{fps}"] = measure(clip, duration, fps, args.repeats)
    print(f"{args.size}, {duration:.0f} s at 25 fps, keyframe every 2 s, {args.b_frames} B-frames; "
          f"median of {args.repeats} runs")
    print(f"{'sampling':<9} {'way':<11} {'ingest streams/core':>20} {'ingest ms':>10} {'consumer ms':>12} "
          f"{'total ms':>9} {'KiB':>7}  (per sample)")
    for rate, row in results["rates"].items():
        for way, r in row.items():
            print(f"{rate:<9} {way:<11} {r['ingest_streams_per_core']:>20} {r['ingest_ms_per_sample']:>10} "
                  f"{r['consumer_decode_ms_per_sample']:>12} {r['total_ms_per_sample']:>9} {r['kib_per_sample']:>7}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
