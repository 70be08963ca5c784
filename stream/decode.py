"""Decode frame packets to RGB arrays with one cached PyAV codec context per stream.

Every packet decodes on its own: the context gets the packet's extradata, the packet is sent and the
decoder drained, then its buffers are flushed for the next packet. A chain packet
(:mod:`stream.packet_chain`) sends its pictures in order and keeps the one at the packet's pts; when
that picture comes out without draining, the decoder is left as it is and the stream's next chain
sends only the pictures it does not hold yet (:mod:`stream.chain_resume`; the same pictures, tested).
Contexts are kept in an LRU map of
at most ``max_streams`` streams (eviction rule: the least recently used stream's context is closed
when a new stream needs room) and are recreated when a stream's codec or extradata changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from stream.chain_resume import UnitKey, resume_point, unit_key
from stream.errors import DecodeError
from stream.packet import FramePacket, PacketFormatError
from stream.packet_chain import decode_chain

SUPPORTED_CODECS = ("h264", "hevc", "mpeg4", "mjpeg")
#: Largest picture decoded (4096 x 2304, above 4K UHD): larger ones are refused before allocation.
MAX_PIXELS = 4096 * 2304

#: swscale interpolation for the YUV -> RGB conversion. Only the half-resolution chroma planes are
#: resampled (luma keeps its size), so nearest-neighbour chroma costs the models nothing measurable
#: and takes the conversion of a 540x960 frame from 2.8 ms to 1.0 ms (benchmarks/pipeline_vs_engine.py).
CHROMA_UPSAMPLING = "POINT"
#: swscale interpolation when a picture is scaled down to a model's input while it is converted
#: (area averaging, as OpenCV's INTER_AREA, at a tenth of its cost: benchmarks/frame_cost.py).
DOWNSCALE_INTERPOLATION = "AREA"
#: swscale threads per conversion. PyAV makes a new scaler context for each decoded picture, and with
#: swscale's own choice (0) each one starts a thread per core for a picture that takes a fraction of
#: a millisecond: on the demo's 540x960 keyframes that made the conversion 0.8-1.8 ms of CPU instead
#: of 0.2 ms, and on a machine whose cores run the models the calling thread waits for those threads.
#: Parallelism comes from decoding streams on several threads (``pipeline.decode_workers``). The
#: pixels are the same either way (tested); docs/benchmarks.md, "Pipeline vs raw engines".
SWSCALE_THREADS = 1


def rgb(picture: av.VideoFrame) -> np.ndarray:
    """The decoded picture as (H, W, 3) RGB uint8 at full resolution."""
    return np.ascontiguousarray(picture.to_ndarray(format="rgb24", interpolation=CHROMA_UPSAMPLING,
                                                    threads=SWSCALE_THREADS))


def scaled_rgb(picture: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The picture scaled to ``width x height`` and converted to RGB in one swscale step: (height,
    width, 3) uint8, without the full-resolution RGB frame in between."""
    return np.ascontiguousarray(
        picture.to_ndarray(format="rgb24", width=width, height=height, interpolation=DOWNSCALE_INTERPOLATION,
                           threads=SWSCALE_THREADS)
    )


@dataclass
class _StreamDecoder:
    codec: str
    extradata: bytes
    context: VideoCodecContext
    lock: threading.Lock = field(default_factory=threading.Lock)  # one packet at a time per context
    broken: bool = False  # a packet failed on it: a thread still holding it takes a fresh one
    held: list[UnitKey] = field(default_factory=list)  # chain pictures sent since the last flush (stream.chain_resume)


class PacketDecoder:
    """Turns ``FramePacket`` s into RGB frames; one codec context per stream, LRU-evicted.

    Args:
        max_streams: Most streams with a live codec context; the least recently used is evicted.
        threads: Decoder threads per context (slice threading; 0 lets FFmpeg choose).
        strict: Make FFmpeg fail on any bitstream error (``err_detect=explode``) instead of
            concealing it, so a damaged keyframe is reported rather than passed on half-grey.
        max_pixels: Largest width x height decoded; FFmpeg refuses larger pictures before
            allocating them (decode bombs).
        skip_loop_filter: Leave out H.264/HEVC deblocking (FFmpeg ``skip_loop_filter=all``): about
            a fifth less decode time for a keyframe, at the cost of block edges the encoder meant
            to smooth (a mean difference of about 2 grey levels on a 1080p IDR); the figures are in
            docs/benchmarks.md.
        resume_chains: Let a stream's decode chain continue from the pictures its decoder still holds
            (:mod:`stream.chain_resume`); False decodes every chain whole (the reference way).

    Thread safety: one lock guards the cache and each stream's context has its own, so packets of
    different streams decode in parallel on several threads (PyAV releases the GIL while FFmpeg
    decodes and converts) and packets of one stream one after another.
    """

    def __init__(self, max_streams: int = 256, threads: int = 1, strict: bool = True,
                 max_pixels: int = MAX_PIXELS, skip_loop_filter: bool = False, resume_chains: bool = True) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.max_streams = max_streams
        self.max_pixels = max_pixels
        self.threads = threads
        self.strict = strict
        self.skip_loop_filter = skip_loop_filter
        self.resume_chains = resume_chains
        self._contexts: OrderedDict[str, _StreamDecoder] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        self.recreations = 0
        self.errors = 0
        self.resumed_units = 0  # chain pictures not decoded again: the stream's decoder still held them

    def __len__(self) -> int:
        return len(self._contexts)

    def streams(self) -> list[str]:
        """Stream ids holding a context, least recently used first."""
        with self._lock:
            return list(self._contexts)

    def decode(self, packet: FramePacket) -> np.ndarray:
        """Decode one packet to an RGB uint8 frame, shape (H, W, 3) (:meth:`decode_picture`, then :func:`rgb`)."""
        return rgb(self.decode_picture(packet))

    def decode_scaled(
        self, packet: FramePacket, size_of: Callable[[int, int], tuple[int, int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode one packet to its full-resolution RGB frame and, with ``size_of``, a second RGB copy
        scaled by swscale straight from the decoded picture to ``size_of(width, height)`` (a
        model's input size), which spares a resize of the full frame.

        Returns:
            ``(frame, scaled)``: (H, W, 3) and (h, w, 3) RGB uint8 (``scaled`` None without ``size_of``).
        """
        picture = self.decode_picture(packet)
        scaled = scaled_rgb(picture, *size_of(picture.width, picture.height)) if size_of is not None else None
        return rgb(picture), scaled

    def decode_picture(self, packet: FramePacket) -> av.VideoFrame:
        """Decode one packet.

        Args:
            packet: A keyframe (H.264 / HEVC / MPEG-4 Part 2, AVCC or Annex B), a JPEG, or a decode
                chain ending in the picture at ``packet.pts``.

        Returns:
            The decoded picture in the codec's own pixel format (YUV for video).

        Raises:
            DecodeError: The codec is unsupported or the data does not decode; the stream's
                context is dropped, so the next packet starts with a fresh decoder.
        """
        while True:
            with self._lock:
                entry = self._context_for(packet)
            with entry.lock:
                if not entry.broken:
                    frames = self._decode_with(entry, packet)
                    break
        good = [f for f in frames if not f.is_corrupt and (not packet.chain or f.pts == packet.pts)]
        if not good:
            self._reset(packet.stream_id, entry)
            reason = "a corrupt frame" if frames else "no frame"
            if packet.chain:
                reason = f"no picture at pts {packet.pts} from its chain"
            raise DecodeError(
                f"stream {packet.stream_id!r} seq {packet.sequence}: {packet.codec} packet of "
                f"{len(packet.data)} bytes gave {reason}; decoder reset"
            )
        return good[-1]

    def _decode_with(self, entry: _StreamDecoder, packet: FramePacket) -> list[av.VideoFrame]:
        """Send ``packet`` through ``entry``'s context and drain it (the caller holds ``entry.lock``).

        A chain whose sample comes out without draining leaves the decoder as it is, so the stream's
        next chain can continue from it (:mod:`stream.chain_resume`); the pictures are the same."""
        try:
            frames = []
            units = decode_chain(packet.data) if packet.chain else [(None, packet.data)]
            resumable = packet.chain and self.resume_chains
            keys = [unit_key(pts, data) for pts, data in units] if resumable else []
            start = resume_point(entry.held, keys)
            if start is None:
                if entry.held:
                    entry.context.flush_buffers()
                    entry.held = []
                start = 0
            self.resumed_units += start
            for pts, data in units[start:]:
                unit = av.Packet(data)
                unit.pts = pts
                frames += entry.context.decode(unit)
            if resumable and any(f.pts == packet.pts and not f.is_corrupt for f in frames):
                entry.held += keys[start:]
                return list(frames)
            entry.held = []
            frames += entry.context.decode(None)
        except (av.FFmpegError, ValueError, PacketFormatError) as exc:
            self._reset(packet.stream_id, entry)
            raise DecodeError(
                f"stream {packet.stream_id!r} seq {packet.sequence}: {packet.codec} packet of "
                f"{len(packet.data)} bytes does not decode ({exc}; pictures above {self.max_pixels} pixels "
                "are refused); decoder reset"
            ) from exc
        try:
            entry.context.flush_buffers()
        except av.FFmpegError:
            self._reset(packet.stream_id, entry)
        return list(frames)

    def drop(self, stream_id: str) -> None:
        """Forget a stream's context (the stream ended)."""
        with self._lock:
            self._contexts.pop(stream_id, None)

    def _context_for(self, packet: FramePacket) -> _StreamDecoder:
        if packet.codec not in SUPPORTED_CODECS:
            self.errors += 1
            raise DecodeError(
                f"stream {packet.stream_id!r}: codec {packet.codec!r} is not supported; "
                f"use one of {', '.join(SUPPORTED_CODECS)}"
            )
        entry = self._contexts.get(packet.stream_id)
        if entry is not None and entry.broken:  # failed on another thread, not yet dropped: replace it
            del self._contexts[packet.stream_id]
            entry = None
        if entry is not None and entry.codec == packet.codec and entry.extradata == packet.extradata:
            self._contexts.move_to_end(packet.stream_id)
            return entry
        if entry is not None:
            self.recreations += 1
            del self._contexts[packet.stream_id]
        context = av.CodecContext.create(packet.codec, "r")
        assert isinstance(context, VideoCodecContext)
        if packet.extradata:
            context.extradata = packet.extradata
        # FFmpeg refuses a picture above max_pixels before allocating it: a 2 MB JPEG of 12000x12000
        # would otherwise take 430 MB of RGB (a decode bomb).
        options = {"max_pixels": str(self.max_pixels)}
        if self.strict:
            options["err_detect"] = "explode"
        if self.skip_loop_filter:
            options["skip_loop_filter"] = "all"
        context.options = options
        context.thread_type = "SLICE"
        context.thread_count = self.threads
        entry = _StreamDecoder(packet.codec, packet.extradata, context)
        self._contexts[packet.stream_id] = entry
        while len(self._contexts) > self.max_streams:
            self._contexts.popitem(last=False)
            self.evictions += 1
        return entry

    def _reset(self, stream_id: str, entry: _StreamDecoder) -> None:
        """Count an error, mark ``entry`` broken and drop it from the cache if it is still there."""
        entry.broken = True
        with self._lock:
            self.errors += 1
            if self._contexts.get(stream_id) is entry:
                del self._contexts[stream_id]
