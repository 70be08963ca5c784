"""From a source URL to ``FramePacket`` s: keyframes without decoding, decoded frames as JPEG, or the
decode chains of sampled frames (``fps:N,transport=chain``; :mod:`stream.packet_chain`).

``FrameReader`` is what the ingest worker and the embedded pipeline use::

    reader = FrameReader("cam-1", "rtmp://host/live/cam-1", SamplingSpec.parse("keyframes"))
    for packet in reader:          # stop from another thread with reader.stop()
        bus.produce("frames", *packet.to_record())

Every packet gets the session's codec extradata, its pts / time_base, the injected clock's wall time
and a per-reader sequence number that grows by one per forwarded packet (across reconnects).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
from av.video.frame import VideoFrame

from stream.backoff import UniformRandom
from stream.clock import Clock, SystemClock
from stream.decode import SUPPORTED_CODECS
from stream.errors import DecodeError
from stream.h264_nal import avcc_length_size, is_disposable
from stream.packet import FramePacket
from stream.packet_chain import GopChain, encode_chain
from stream.sampling import KEYFRAMES, RateLimiter, SamplingSpec
from stream.source import Session, SourceInfo, SourceOptions, UnsupportedSourceError, VideoSource

log = logging.getLogger(__name__)


@dataclass
class SamplingCounters:
    """What the sampler did with the packets the source gave it."""

    forwarded: int = 0
    dropped_rate: int = 0
    skipped_fps: int = 0
    decode_errors: int = 0
    #: fps sampling: packets not decoded because the grid needs no frame before the next keyframe.
    skipped_decode: int = 0
    #: fps sampling: non-reference H.264 pictures not decoded because they fall before the grid's next slot.
    skipped_nonref: int = 0
    #: chain transport: samples with no chain (before the session's first keyframe, or a GOP over
    #: the chain bounds: policy ``drop-until-keyframe``).
    dropped_chain: int = 0


class FpsGrid:
    """Picks frames on a fixed grid of ``1 / fps`` seconds: one frame per slot, the first at or after it.

    Args:
        fps: Frames per second to keep.
    """

    def __init__(self, fps: float) -> None:
        self.interval_s = 1.0 / fps
        self._next: float | None = None

    def admit(self, t: float) -> bool:
        """True when the frame at ``t`` seconds opens a new slot."""
        tolerance = 1e-6
        if self._next is None or t < self._next - 2 * self.interval_s:
            self._next = t  # first frame, or timestamps jumped backwards (new session)
        if t + tolerance < self._next:
            return False
        while self._next <= t + tolerance:
            self._next += self.interval_s
        return True

    @property
    def next_slot(self) -> float | None:
        """Stream time of the next slot (None before the first frame)."""
        return self._next

    def reset(self) -> None:
        self._next = None


class GopSkipper:
    """Leaves the tail of a GOP undecoded once the fps grid needs no frame before the next keyframe.

    A P-frame needs every frame since its keyframe, so frames can only be skipped up to the next
    keyframe. The GOP length is learnt from the keyframe times seen (median of the last
    ``history`` gaps); until two keyframes were seen, nothing is skipped. When a GOP runs longer than
    learnt, the frames until the next keyframe are lost to the grid (its next slot then takes the
    keyframe), never decoded wrongly.

    Args:
        history: Keyframe gaps remembered (bounded).
    """

    def __init__(self, history: int = 8) -> None:
        self._gaps: deque[float] = deque(maxlen=history)
        self._keyframe_t: float | None = None
        self.skipping = False

    def keyframe(self, t: float) -> None:
        """A keyframe at ``t`` seconds: decoding resumes here."""
        if self._keyframe_t is not None and t > self._keyframe_t:
            self._gaps.append(t - self._keyframe_t)
        self._keyframe_t = t
        self.skipping = False

    def sampled(self, t: float, next_slot: float | None, frame_interval_s: float) -> None:
        """After the frame at ``t`` was taken: skip the rest of the GOP when the next slot falls at or
        after the next keyframe (within half a frame interval). A frame already past the expected
        next keyframe (a keyframe lost to damage, a longer GOP) skips nothing."""
        if next_slot is None or self._keyframe_t is None or not self._gaps:
            return
        next_keyframe = self._keyframe_t + sorted(self._gaps)[len(self._gaps) // 2]
        if t < next_keyframe - frame_interval_s / 2 <= next_slot:
            self.skipping = True

    def reset(self) -> None:
        """A new session: forget the keyframe times."""
        self._gaps.clear()
        self._keyframe_t = None
        self.skipping = False


class FrameReader:
    """Iterates ``FramePacket`` s from one stream with the given sampling.

    Args:
        stream_id: Id stamped on every packet.
        url: File path or live URL.
        sampling: Keyframes (demux only) or ``fps:N`` (decode + JPEG), optional ``max_rate``.
        options: Source timeouts, retries, backoff and pacing.
        clock: Injected clock (wallclock stamps, backoff sleeps, stall detection, realtime pacing).
        rng: Injected randomness for backoff jitter.
        stop: Optional shared stop event; ``stop()`` sets it.
    """

    def __init__(
        self,
        stream_id: str,
        url: str | Path,
        sampling: SamplingSpec | None = None,
        options: SourceOptions | None = None,
        clock: Clock | None = None,
        rng: UniformRandom | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.sampling = sampling or SamplingSpec()
        self.clock = clock or SystemClock()
        self.source = VideoSource(url, options, self.clock, rng, stop)
        self.counters = SamplingCounters()
        self.limiter = RateLimiter(1.0 / self.sampling.max_rate if self.sampling.max_rate else None)
        self._sequence = 0

    @property
    def info(self) -> SourceInfo | None:
        """Codec, width, height, fps of the current session (None before the first open)."""
        return self.source.info

    def stop(self) -> None:
        """End iteration from any thread (seen between packets or within a stall timeout)."""
        self.source.stop()

    def __iter__(self) -> Iterator[FramePacket]:
        if self.sampling.mode == KEYFRAMES:
            yield from self._keyframes()
        elif self.sampling.transport == "chain":
            yield from self._fps_chains()
        else:
            yield from self._fps()

    def _keyframes(self) -> Iterator[FramePacket]:
        session_index = -1
        for session, packet in self.source.packets(keyframes_only=True):
            if session.index != session_index:
                session_index = session.index
                self._check_codec(session)
                self.limiter.reset()
            pts = _pts(packet)
            time_base = Fraction(packet.time_base) if packet.time_base else session.info.time_base
            if not self.limiter.admit(float(pts * time_base)):
                self.counters.dropped_rate += 1
                continue
            yield self._packet(session.info.codec, bytes(packet), session.info.extradata, pts, time_base)

    def _fps(self) -> Iterator[FramePacket]:
        assert self.sampling.fps is not None
        grid = FpsGrid(self.sampling.fps)
        gop = GopSkipper()
        session_index = -1
        for session, packet in self.source.packets(keyframes_only=False):
            if session.index != session_index:
                session_index = session.index
                grid.reset()
                gop.reset()
                self.limiter.reset()
            if packet.size and packet.is_keyframe:
                time_base = Fraction(packet.time_base) if packet.time_base else session.info.time_base
                gop.keyframe(float(_pts(packet) * time_base))
            elif packet.size and gop.skipping:
                self.counters.skipped_decode += 1
                continue
            elif packet.size and self._unwanted_nonref(session, packet, grid):
                self.counters.skipped_nonref += 1
                continue
            try:
                frames = session.stream.codec_context.decode(packet)
            except av.FFmpegError as exc:
                self.counters.decode_errors += 1
                errors = self.counters.decode_errors
                if errors in (1, 10, 100) or errors % 1000 == 0:  # keep a damaged stream from flooding the log
                    log.warning("stream %s: %d packets did not decode so far (last: %s)", self.stream_id, errors, exc)
                continue
            for frame in frames:
                yielded = self._sample_frame(session, frame, grid)
                if yielded is not None:
                    gop.sampled(float(yielded.pts * yielded.time_base), grid.next_slot,
                                1.0 / max(session.info.fps or 25.0, 1.0))
                    yield yielded

    def _fps_chains(self) -> Iterator[FramePacket]:
        """fps sampling without decoding: the grid picks pictures by their pts in decode order, and
        each sample travels as its decode chain. A picture shown before the last sample (a B-frame
        after its P-frame) is not taken, so samples go out in presentation order; with B-frames a
        slot may take a picture up to the reorder depth later than the decoding path would."""
        assert self.sampling.fps is not None
        grid = FpsGrid(self.sampling.fps)
        chain = GopChain()
        last_t: float | None = None
        session_index = -1
        for session, packet in self.source.packets(keyframes_only=False):
            if session.index != session_index:
                session_index = session.index
                self._check_codec(session)
                grid.reset()
                chain.reset()
                self.limiter.reset()
                last_t = None
            if not packet.size:
                continue
            data, pts = bytes(packet), _pts(packet)
            time_base = Fraction(packet.time_base) if packet.time_base else session.info.time_base
            reference = not (session.info.codec == "h264"
                             and is_disposable(data, avcc_length_size(session.info.extradata)))
            chain.push(pts, data, bool(packet.is_keyframe), reference)
            if not chain.started:  # joined mid-GOP: nothing decodes before the first keyframe
                self.counters.dropped_chain += 1
                continue
            t = float(pts * time_base)
            if (last_t is not None and t <= last_t) or not grid.admit(t):
                self.counters.skipped_fps += 1
                continue
            if not self.limiter.admit(t):
                self.counters.dropped_rate += 1
                continue
            last_t = t
            units = chain.chain()
            if units is None:
                self.counters.dropped_chain += 1
                continue
            yield self._packet(session.info.codec, encode_chain(units), session.info.extradata, pts, time_base,
                               chain=True)

    @staticmethod
    def _unwanted_nonref(session: Session, packet: av.Packet, grid: FpsGrid) -> bool:
        """True for an H.264 picture no other picture refers to whose time the grid has already passed.

        The grid's next slot only moves forward while frames come out (in presentation order, after
        the decoder's reordering), so a picture before it now is one the grid would refuse later:
        leaving it undecoded changes no sampled frame. A picture more than two grid intervals before
        the slot (timestamps that jumped back) is decoded, as the grid then starts over.
        """
        next_slot = grid.next_slot
        if next_slot is None or packet.pts is None or session.info.codec != "h264":
            return False
        time_base = Fraction(packet.time_base) if packet.time_base else session.info.time_base
        t = float(packet.pts * time_base)
        half_frame_s = 0.5 / max(session.info.fps or 25.0, 1.0)
        if not next_slot - 2 * grid.interval_s <= t < next_slot - half_frame_s:
            return False
        return is_disposable(bytes(packet), avcc_length_size(session.info.extradata))

    def _sample_frame(self, session: Session, frame: VideoFrame, grid: FpsGrid) -> FramePacket | None:
        time_base = Fraction(frame.time_base) if frame.time_base else session.info.time_base
        pts = frame.pts if frame.pts is not None else 0
        t = float(pts * time_base)
        if not grid.admit(t):
            self.counters.skipped_fps += 1
            return None
        if not self.limiter.admit(t):
            self.counters.dropped_rate += 1
            return None
        return self._packet("mjpeg", encode_jpeg(frame, self.sampling.jpeg_quality), b"", pts, time_base)

    def _packet(self, codec: str, data: bytes, extradata: bytes, pts: int, time_base: Fraction,
                chain: bool = False) -> FramePacket:
        packet = FramePacket(
            stream_id=self.stream_id,
            codec=codec,
            data=data,
            extradata=extradata,
            pts=pts,
            time_base=time_base,
            wallclock=self.clock.now(),
            sequence=self._sequence,
            keyframe=not chain,
            chain=chain,
        )
        self._sequence += 1
        self.counters.forwarded += 1
        return packet

    def _check_codec(self, session: Session) -> None:
        if session.info.codec not in SUPPORTED_CODECS:
            raise UnsupportedSourceError(
                f"{self.source.url}: video codec {session.info.codec!r} cannot travel as keyframes; "
                f"use fps sampling or a source in {', '.join(c for c in SUPPORTED_CODECS if c != 'mjpeg')}"
            )


def iter_frame_packets(
    stream_id: str,
    url: str | Path,
    sampling: SamplingSpec | str = "keyframes",
    options: SourceOptions | None = None,
    clock: Clock | None = None,
    rng: UniformRandom | None = None,
    stop: threading.Event | None = None,
) -> Iterator[FramePacket]:
    """Shorthand for ``iter(FrameReader(...))``; ``sampling`` may be a spec string."""
    spec = SamplingSpec.parse(sampling) if isinstance(sampling, str) else sampling
    return iter(FrameReader(stream_id, url, spec, options, clock, rng, stop))


def encode_jpeg(frame: VideoFrame, quality: int = 90) -> bytes:
    """JPEG bytes of a decoded frame (any pixel format), encoded by OpenCV (libjpeg-turbo): about a
    quarter of the cost of going through a PIL image (benchmarks/sampling_cost.py)."""
    ok, data = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DecodeError(f"frame of {frame.width}x{frame.height} could not be encoded as JPEG")
    return data.tobytes()


def _pts(packet: av.Packet) -> int:
    if packet.pts is not None:
        return int(packet.pts)
    return int(packet.dts) if packet.dts is not None else 0
