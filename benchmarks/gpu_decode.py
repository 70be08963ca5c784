"""Keyframe decode rates for ``gpu_streams.py``: software, NVDEC, and NVDEC into a model input on the GPU.

Every packet is decoded on its own (send, drain, flush), as the inference stage decodes. What happens
to each decoded picture is the variant's ``finish``:

* ``rgb``: converted to an RGB array in host memory (the stage's path today);
* ``None``: left where the decoder put it (for NVDEC with ``is_hw_owned``: in GPU memory);
* ``device_input``: its NV12 planes taken by DLPack, converted to RGB and scaled to the detector's
  input size by torch on the device that holds them (:mod:`engines.nv12`): the path that keeps the
  host out of the pixels. The software reference converts the picture to NV12 in host memory first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stream.decode import PacketDecoder

#: Long side of the model input the ``device_input`` finish scales to (the shipped detector's).
INPUT_LONG_SIDE = 320
#: DLPack's device type of host memory (``__dlpack_device__()[0]``).
DLPACK_CPU = 1


def rate(work: Callable[[], Any], items: int, cap_s: float, min_calls: int = 3) -> float:
    """Items per second of ``work()`` (one warm-up call, then calls until ``cap_s``, at least ``min_calls``)."""
    work()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < cap_s:
        work()
        calls += 1
    return items * calls / (time.perf_counter() - start)


def to_rgb(frame: Any) -> Any:
    """The picture as (H, W, 3) uint8 RGB in host memory."""
    return frame.to_ndarray(format="rgb24")


def device_input(frame: Any) -> Any:
    """The picture as the detector's (h, w, 3) uint8 input on the device holding its NV12 planes.

    A frame in host memory in another format is converted to NV12 there first (the CPU reference).
    """
    import torch

    from engines.colour import AVCOL_RANGE_JPEG, matrix_of
    from engines.nv12 import nv12_to_rgb, scaled_input

    if frame.planes[0].__dlpack_device__()[0] == DLPACK_CPU and frame.format.name != "nv12":
        frame = frame.reformat(format="nv12")
    y, uv = torch.from_dlpack(frame.planes[0]), torch.from_dlpack(frame.planes[1])
    picture = nv12_to_rgb(y, uv, matrix_of(frame.colorspace), frame.color_range == AVCOL_RANGE_JPEG)
    height, width = picture.shape[:2]
    scale = INPUT_LONG_SIDE / max(height, width)
    return scaled_input(picture, max(1, round(width * scale)), max(1, round(height * scale)))


def _per_packet(ctx: Any, packets: list[Any], finish: Callable[[Any], Any] | None) -> None:
    """Decode each packet on its own, as the stage does: send it, drain, flush the context."""
    import av

    for p in packets:
        frames = ctx.decode(av.Packet(p.data)) + ctx.decode(None)
        ctx.flush_buffers()
        if finish is not None:
            for frame in frames:
                finish(frame)
    if finish is device_input:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the device's work belongs to the round it was queued in


def _threaded_rate(make: Callable[[], Any], packets: list[Any], threads: int, cap_s: float,
                   finish: Callable[[Any], Any] | None) -> float:
    """Keyframes/s of ``threads`` threads, each decoding ``packets`` with its own context from ``make()``."""
    contexts = [make() for _ in range(threads)]
    for c in contexts:
        c.extradata = packets[0].extradata or None
    if threads == 1:
        return rate(lambda: _per_packet(contexts[0], packets, finish), len(packets), cap_s)
    with ThreadPoolExecutor(threads) as pool:
        def round_all() -> None:
            list(pool.map(lambda c: _per_packet(c, packets, finish), contexts))

        return rate(round_all, threads * len(packets), cap_s)


def bench_decode(packets: list[Any], cap_s: float, workers: int) -> dict[str, Any]:
    """Keyframes/s to RGB on the CPU (the stage's decoder: one thread, FFmpeg's slice threads, no
    deblocking, ``workers`` streams at once), on NVDEC (``h264_cuvid``, and the native decoder with
    CUDA hwaccel, frames downloaded and converted or left on the device), and into the detector's
    input on the device (NVDEC) or through the same torch code on the CPU (the reference)."""
    import av
    from av.codec.hwaccel import HWAccel

    out: dict[str, Any] = {"workers": workers}
    for name, threads, skip in (
        ("software_1_thread", 1, False),
        ("software_auto_threads", 0, False),
        ("software_1_thread_skip_loop_filter", 1, True),
    ):
        decoder = PacketDecoder(threads=threads, skip_loop_filter=skip)
        per_s = rate(lambda d=decoder: [d.decode(p) for p in packets], len(packets), cap_s)
        out[name] = {"keyframes_per_s": round(per_s, 1)}

    def hwaccel() -> Any:
        return av.CodecContext.create("h264", "r", hwaccel=HWAccel("cuda", allow_software_fallback=False))

    def hwaccel_on_gpu() -> Any:
        return av.CodecContext.create("h264", "r", hwaccel=HWAccel("cuda", allow_software_fallback=False,
                                                                   is_hw_owned=True))

    variants: list[tuple[str, Callable[[], Any], Callable[[Any], Any] | None]] = [
        ("software", lambda: av.CodecContext.create("h264", "r"), to_rgb),
        ("software_device_input", lambda: av.CodecContext.create("h264", "r"), device_input),
        ("nvdec_h264_cuvid", lambda: av.CodecContext.create("h264_cuvid", "r"), to_rgb),
        ("nvdec_hwaccel", hwaccel, to_rgb),
        ("nvdec_hwaccel_frames_on_gpu", hwaccel_on_gpu, None),
        ("nvdec_hwaccel_device_input", hwaccel_on_gpu, device_input),
    ]
    for name, make, finish in variants:
        for threads in (1, workers):
            key = f"{name}_{threads}_streams"
            if name == "software" and threads == 1:
                continue  # software_1_thread above
            try:
                out[key] = {"keyframes_per_s": round(_threaded_rate(make, packets, threads, cap_s, finish), 1)}
            except Exception as exc:  # noqa: BLE001 - no NVDEC here is a result, not a failure
                out[key] = {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}
    return out
