"""CPU cost per analysed 1080p keyframe outside the models, step by step, ways side by side.

The clip: the real camera footage ``tests/data/car-detection-14s.mp4`` (768x432) upscaled to 1920x1080
and encoded as H.264 at a camera-like bitrate with a keyframe every 5 frames, so every keyframe is
real texture, not a flat render. Each keyframe packet goes through the steps the inference stage
runs before and around the models, timed in CPU seconds of the whole process (``time.process_time``):
the libraries' own worker threads count too (swscale's and OpenCV's pools, which the calling
thread's CPU time leaves out; nothing else runs meanwhile). The decoder runs with one thread here:

====================  ==========================================================================
step                  what
====================  ==========================================================================
decode                H.264 keyframe -> YUV picture (``skip_loop_filter`` on or off)
rgb                   YUV -> full-resolution RGB (the frame the stage keeps: crops, OCR)
detector input        RGB -> the detector's letterboxed input batch (``DetectorEngine.pre_process``)
crops                 two sold-item-sized crops (+10 %) -> embedder input (``EmbedderEngine.pre_process``)
====================  ==========================================================================

Ways compared in one run, median of ``--repeats`` runs of the per-frame median:

* ``before``: the stage before the faster normalisation: one OpenCV ``INTER_AREA`` resize per image,
  then a normalisation that cast to float32 before reordering NHWC -> NCHW (kept as the reference).
* ``float``: packages with float32 input (2026-12-03): the same resize; the normalisation reorders
  the uint8 bytes first, then casts (``engines.preprocess.normalise``).
* ``pixels``: now: the shipped packages take uint8 pixels and normalise them in their graph
  (``engines.pixel_input``), and shrinking is the two-step area resize
  (``engines.preprocess.area_resize``); then a stack of the uint8 images.
* ``pixels+swscale``: as ``pixels``, with the detector input scaled and converted from YUV by
  swscale in one step to the letterbox size (``stream.decode.scaled_rgb``,
  ``DetectorEngine.pre_process_scaled``); only the pad is left to numpy.
* ``planes``: now: no whole RGB frame. The picture keeps its YUV planes (``engines.picture``); the
  detector input and each crop are shrunk plane by plane with the same two-step area resize and
  only the small results are converted to RGB (``PlanarPicture.region``); the rgb column is 0.
* ``planes+swscale``: as ``planes``, with the detector input by swscale as in ``pixels+swscale``
  (``pipeline.scale_in_decoder``).

The models must be the pixel-input packages (``livetag model repack`` makes them from float ones).

Usage::

    python benchmarks/frame_cost.py --repeats 5 [--opencv-threads 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consumers.settings import ModelSettings  # noqa: E402
from consumers.stage.model_loading import DEFAULT_MODELS_DIR, load_models  # noqa: E402
from engines.picture import PlanarPicture, crops  # noqa: E402
from engines.preprocess import crop, normalise  # noqa: E402
from stream.decode import rgb, scaled_rgb  # noqa: E402
from stream.encode import write_video  # noqa: E402

SOURCE = REPO / "tests" / "data" / "car-detection-14s.mp4"
#: Two boxes of the size a held-up or worn garment takes in a 1080p frame (x1, y1, x2, y2).
BOXES = ((700.0, 200.0, 1150.0, 900.0), (1300.0, 350.0, 1600.0, 800.0))


def make_clip(path: Path, frames: int, bitrate: int) -> None:
    """The source clip's first ``frames`` frames, upscaled to 1080p, a keyframe every 5 frames."""
    import av
    import cv2

    out = []
    with av.open(str(SOURCE)) as container:
        for frame in container.decode(video=0):
            out.append(cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_CUBIC))
            if len(out) >= frames:
                break
    write_video(path, out, fps=12.5, gop=5, bitrate=bitrate)


def keyframe_packets(path: Path) -> tuple[Any, list[Any]]:
    """The clip's video stream codec context parameters and its keyframe packets."""
    import av

    container = av.open(str(path))
    stream = container.streams.video[0]
    packets = [p for p in container.demux(stream) if p.is_keyframe and p.size]
    return stream.codec_context, packets


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """``(ms of the process's CPU, fn(*args))``: every thread's, the libraries' worker threads too."""
    start = time.process_time()
    value = fn(*args)
    return (time.process_time() - start) * 1000.0, value


def _decode(context: Any, data: bytes) -> Any:
    import av

    frames = context.decode(av.Packet(data)) + context.decode(None)
    context.flush_buffers()
    return frames[-1]


def _crops(embedder: Any, image: np.ndarray) -> Any:
    return embedder.pre_process([crop(image, box, 0.1) for box in BOXES])


def _normalise_before(images: list[np.ndarray], norm: Any) -> np.ndarray:
    """The normalisation as it was: cast, scale, then reorder the float32 batch."""
    batch = np.stack(images).astype(np.float32)
    batch *= (norm.scale / np.asarray(norm.std, np.float32)).astype(np.float32)
    batch += (-np.asarray(norm.mean, np.float32) / np.asarray(norm.std, np.float32)).astype(np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def _resize_before(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The resize before the two-step area resize: one ``INTER_AREA`` call when shrinking."""
    import cv2

    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _letterbox_before(image: np.ndarray, inp: Any) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(inp.width / w, inp.height / h)
    new_w, new_h = min(inp.width, max(1, round(w * s))), min(inp.height, max(1, round(h * s)))
    canvas = np.full((inp.height, inp.width, 3), inp.pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = _resize_before(image, new_w, new_h)
    return canvas


def _detector_input_before(detector: Any, image: np.ndarray) -> np.ndarray:
    return _normalise_before([_letterbox_before(image, detector.spec.input)], detector.spec.normalization)


def _crops_before(embedder: Any, image: np.ndarray) -> np.ndarray:
    e = embedder.spec.input
    crops = [_resize_before(crop(image, box, 0.1), e.width, e.height) for box in BOXES]
    return _normalise_before(crops, embedder.spec.normalization)


def _detector_input_float(detector: Any, image: np.ndarray) -> np.ndarray:
    return normalise([_letterbox_before(image, detector.spec.input)], detector.spec.normalization)


def _crops_float(embedder: Any, image: np.ndarray) -> np.ndarray:
    e = embedder.spec.input
    return normalise([_resize_before(crop(image, box, 0.1), e.width, e.height) for box in BOXES], embedder.spec.normalization)


def _scaled_input(detector: Any, picture: Any) -> Any:
    size = (picture.width, picture.height)
    return detector.pre_process_scaled([scaled_rgb(picture, *detector.scaled_size(*size))], [size])


def _planes_input(detector: Any, picture: Any) -> Any:
    planar = PlanarPicture(picture)
    size = (planar.width, planar.height)
    return detector.pre_process_scaled([planar.region((0, 0, *size), *detector.scaled_size(*size))], [size])


def _planes_crops(embedder: Any, picture: Any) -> Any:
    return embedder.pre_process(crops(PlanarPicture(picture), np.asarray(BOXES), 0.1, embedder.scaled_size))


def one_run(codec: Any, packets: list[Any], detector: Any, embedder: Any, skip_loop_filter: bool) -> dict[str, dict[str, float]]:
    """Per-step median ms for both ways over every keyframe."""
    import av

    context = av.CodecContext.create("h264", "r")
    context.extradata = codec.extradata
    context.thread_type = "SLICE"
    context.thread_count = 1
    if skip_loop_filter:
        context.options = {"skip_loop_filter": "all"}
    steps: dict[str, dict[str, list[float]]] = {"before": {}, "float": {}, "pixels": {}, "pixels+swscale": {}, "planes": {},
                                                 "planes+swscale": {}}
    for packet in packets:
        ms, picture = timed(_decode, context, bytes(packet))
        rgb_ms, image = timed(rgb, picture)
        det_ms, _ = timed(detector.pre_process, [image])
        crop_ms, _ = timed(_crops, embedder, image)
        small_ms, _ = timed(_scaled_input, detector, picture)
        det_float_ms, _ = timed(_detector_input_float, detector, image)
        crops_float_ms, _ = timed(_crops_float, embedder, image)
        det_before_ms, _ = timed(_detector_input_before, detector, image)
        crops_before_ms, _ = timed(_crops_before, embedder, image)
        planes_det_ms, _ = timed(_planes_input, detector, picture)
        planes_crops_ms, _ = timed(_planes_crops, embedder, picture)
        ways = {"before": (ms, rgb_ms, det_before_ms, crops_before_ms), "float": (ms, rgb_ms, det_float_ms, crops_float_ms),
                "pixels": (ms, rgb_ms, det_ms, crop_ms), "pixels+swscale": (ms, rgb_ms, small_ms, crop_ms),
                "planes": (ms, 0.0, planes_det_ms, planes_crops_ms),
                "planes+swscale": (ms, 0.0, small_ms, planes_crops_ms)}
        for way, values in ways.items():
            for name, value in zip(("decode", "rgb", "detector input", "crops"), values, strict=True):
                steps[way].setdefault(name, []).append(value)
    return {way: {name: statistics.median(v) for name, v in by_step.items()} for way, by_step in steps.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=100, help="source frames in the clip (a keyframe every 5)")
    parser.add_argument("--bitrate", type=int, default=8_000_000, help="bits per second of the 1080p clip")
    parser.add_argument("--opencv-threads", type=int, default=ModelSettings().opencv_threads,
                        help="OpenCV's thread count (models.opencv_threads, default %(default)s; 0: OpenCV's own)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    detector, embedder = load_models(ModelSettings(str(DEFAULT_MODELS_DIR / "detector"), str(DEFAULT_MODELS_DIR / "embedder"),
                                                   opencv_threads=args.opencv_threads))
    if not (detector.spec.input.takes_pixels and embedder.spec.input.takes_pixels):
        parser.error("the models must take uint8 pixels (livetag model repack SOURCE OUT makes such a package)")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "car-1080p.mp4"
        make_clip(clip, args.frames, args.bitrate)
        codec, packets = keyframe_packets(clip)
        results: dict[str, Any] = {"keyframes": len(packets), "bytes_per_keyframe": int(np.median([p.size for p in packets]))}
        for skip in (False, True):
            runs = [one_run(codec, packets, detector, embedder, skip) for _ in range(args.repeats)]
            label = "skip_loop_filter" if skip else "loop_filter"
            results[label] = {way: {step: round(statistics.median(r[way][step] for r in runs), 2) for step in runs[0][way]}
                              for way in runs[0]}
    print(f"{results['keyframes']} 1080p keyframes, median {results['bytes_per_keyframe']} bytes; "
          f"median of {args.repeats} runs, ms of CPU per keyframe")
    print(f"{'way':<36} {'decode':>7} {'rgb':>6} {'det in':>7} {'crops':>6} {'total':>7}")
    for label in ("loop_filter", "skip_loop_filter"):
        for way, steps in results[label].items():
            total = sum(steps.values())
            results[label][way]["total"] = round(total, 2)
            print(f"{label + ' / ' + way:<36} {steps['decode']:>7.2f} {steps['rgb']:>6.2f} "
                  f"{steps['detector input']:>7.2f} {steps['crops']:>6.2f} {total:>7.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
