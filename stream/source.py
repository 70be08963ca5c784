"""Open video sources with PyAV (files and live URLs), reconnect with backoff, detect stalls.

A ``VideoSource`` yields demuxed video packets without decoding them. Live URLs (RTMP, RTSP, HLS,
HTTP, SRT, ...) reconnect on end of stream, read errors and stalls, waiting ``Backoff`` delays
between failed opens; files end at end of file. After ``max_retries`` consecutive failed opens the
source raises ``SourceOpenError`` naming the URL. Time and randomness are injected, so tests run the
retry schedule without sleeping.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from stream.backoff import Backoff, UniformRandom
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError, SourceOpenError
from stream.pacing import Pacer

log = logging.getLogger(__name__)

#: File name suffixes taken as recorded video (sample folders, data sets).
VIDEO_FILE_SUFFIXES = (".mp4", ".mkv", ".mov", ".flv", ".ts", ".avi", ".webm")
LIVE_SCHEMES = ("rtmp", "rtmps", "rtsp", "rtsps", "http", "https", "hls", "srt", "udp", "tcp", "rtp")
# Options FFmpeg gets for a scheme unless the caller sets them. FLV over RTMP declares its tracks
# only in the data, so FFmpeg probes for ``analyzeduration`` (5 s by default) before the first
# packet; half a second is enough to see the codec header and keeps the first keyframe prompt.
_QUICK_PROBE = {"analyzeduration": "500000"}
DEFAULT_AV_OPTIONS: dict[str, dict[str, str]] = {
    "rtmp": _QUICK_PROBE,
    "rtmps": _QUICK_PROBE,
    "srt": _QUICK_PROBE,
    "rtsp": {"rtsp_transport": "tcp"},
    "rtsps": {"rtsp_transport": "tcp"},
}


#: FFmpeg protocols a source may use, by URL scheme: a playlist or container that names another
#: protocol (``file:``, ``concat:``, ``http:`` inside a local file ...) fails to open instead.
PROTOCOL_WHITELIST: dict[str, str] = {
    "rtmp": "rtmp,rtmps,rtmpt,rtmpts,tcp,tls",
    "rtmps": "rtmp,rtmps,rtmpt,rtmpts,tcp,tls",
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "rtsps": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "srt": "srt,udp",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "https": "http,https,tcp,tls,crypto,httpproxy",
    "hls": "http,https,tcp,tls,crypto,httpproxy",
    "udp": "udp,rtp",
    "rtp": "udp,rtp",
    "tcp": "tcp",
    "file": "file,crypto",
}


#: A file whose packets cover less than this share of its declared video duration is reported.
EARLY_END_SHARE = 0.8


class SourceReadError(LiveTagError):
    """A file source failed part-way through (corrupt or truncated container)."""


class UnsupportedSourceError(SourceOpenError):
    """The source opened but has nothing we can use (no video track); retrying will not help."""


def nominal_frame_rate(stream: VideoStream) -> Fraction | None:
    """The stream's coded frame rate, else its average or guessed rate (None when unknown).

    A sparse file (every n-th frame kept, pts unchanged) has an average rate far below the rate its
    timestamps count in; the codec's declared rate is the one that maps a pts to the original index.
    """
    for rate in (stream.codec_context.framerate, stream.average_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    return None


def url_scheme(url: str) -> str:
    """The lower-case scheme of ``url`` (``"file"`` for plain paths)."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.isalnum() else "file"


def is_live_url(url: str) -> bool:
    """True for network URLs (reconnect on end of stream), False for files."""
    return url_scheme(url) in LIVE_SCHEMES


@dataclass(frozen=True)
class SourceOptions:
    """How a source is opened and kept alive.

    Attributes:
        open_timeout_s: Seconds an open (connect + probe) may take.
        stall_timeout_s: Seconds without a packet before the source counts as stalled and is reopened.
        max_retries: Consecutive failed opens tolerated; one more raises ``SourceOpenError``.
        backoff: Delays between failed opens.
        live: True = reconnect at end of stream; None = decide from the URL (files are not live).
        realtime: Pace reading to the stream's own timestamps (for replaying files like a live feed).
        speed: Pace factor with ``realtime`` (1.0 = real time).
        av_options: FFmpeg options for ``av.open`` (e.g. ``{"rtsp_transport": "udp"}``).
        format: Force an input format (e.g. ``"flv"``); None lets FFmpeg probe.
    """

    open_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0
    max_retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    live: bool | None = None
    realtime: bool = False
    speed: float = 1.0
    av_options: dict[str, str] = field(default_factory=dict)
    format: str | None = None

    def __post_init__(self) -> None:
        if not self.open_timeout_s > 0 or not self.stall_timeout_s > 0:
            raise ValueError("open_timeout_s and stall_timeout_s must be > 0")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")


@dataclass(frozen=True)
class SourceInfo:
    """What one opened session of a source carries.

    Attributes:
        codec: PyAV decoder name of the video track (``h264``, ``hevc``, ``mpeg4``, ...).
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Average (or guessed) frame rate; None when unknown.
        time_base: Seconds per pts tick of the video track.
        extradata: Codec extradata (avcC / hvcC / Annex B parameter sets / VOL), may be empty.
    """

    codec: str
    width: int
    height: int
    fps: float | None
    time_base: Fraction
    extradata: bytes


@dataclass
class SourceCounters:
    """Monotonic counters for metrics (read them any time; only the reading thread writes)."""

    opens: int = 0
    open_failures: int = 0
    reconnects: int = 0
    stalls: int = 0
    read_errors: int = 0
    end_of_streams: int = 0
    packets: int = 0
    keyframes: int = 0


@dataclass
class Session:
    """One open connection: its index (0 = first), stream info and the live PyAV stream."""

    index: int
    info: SourceInfo
    stream: VideoStream


class VideoSource:
    """A reconnecting PyAV input yielding the video track's packets undecoded.

    Args:
        url: File path or URL (``rtmp://``, ``rtsp://``, ``https://...m3u8``, ``file.mp4``).
        options: Timeouts, retries, backoff, pacing.
        clock: Injected time (backoff sleeps, stall detection, pacing).
        rng: Injected randomness for backoff jitter.
        stop: Set from any thread to end iteration (seen between packets, within a stall timeout).
    """

    def __init__(
        self,
        url: str | Path,
        options: SourceOptions | None = None,
        clock: Clock | None = None,
        rng: UniformRandom | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = str(url)
        self.options = options or SourceOptions()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.stop_event = stop or threading.Event()
        self.live = self.options.live if self.options.live is not None else is_live_url(self.url)
        self.counters = SourceCounters()
        self.info: SourceInfo | None = None

    def stop(self) -> None:
        """Ask the reading thread to finish; safe from any thread."""
        self.stop_event.set()

    def packets(self, keyframes_only: bool = False) -> Iterator[tuple[Session, av.Packet]]:
        """Yield ``(session, packet)`` for the video track, reopening live sources as needed.

        Args:
            keyframes_only: Skip non-keyframe packets right after demux (no copy, no decode).

        The packet is valid until the next item is requested. Without ``keyframes_only`` the end of
        each session is marked by an empty packet (size 0), which drains a decoder.

        Raises:
            SourceOpenError: ``max_retries + 1`` opens in a row failed, or the source has no video.
            SourceReadError: A file source failed part-way (live sources reconnect instead).
        """
        failures = 0
        sessions = 0
        while not self.stop_event.is_set():
            try:
                container = self._open()
            except UnsupportedSourceError:
                raise
            except (av.FFmpegError, OSError) as exc:
                self.counters.open_failures += 1
                if failures >= self.options.max_retries:
                    raise SourceOpenError(
                        f"cannot open {self.url} after {failures + 1} attempt(s): {_reason(exc)}"
                    ) from exc
                delay = self.options.backoff.delay(failures, self.rng)
                failures += 1
                log.warning("open %s failed (%s); retry %d in %.2fs", self.url, _reason(exc), failures, delay)
                self._sleep(delay)
                continue
            if sessions:
                self.counters.reconnects += 1
            try:
                session = self._start_session(container, sessions)
                sessions += 1
                got_packets = yield from self._demux(session, container, keyframes_only)
            finally:
                container.close()
            if self.stop_event.is_set() or not self.live:
                return
            # A live source that ended or stalled: reconnect after a backoff delay. Sessions that
            # give no video packet count against max_retries like failed opens.
            if got_packets:
                failures = 0
                delay = self.options.backoff.delay(0, self.rng)
            else:
                if failures >= self.options.max_retries:
                    raise SourceOpenError(
                        f"cannot read {self.url}: {failures + 1} sessions in a row gave no video packet"
                    )
                delay = self.options.backoff.delay(failures, self.rng)
                failures += 1
            self._sleep(delay)

    def _open(self) -> InputContainer:
        scheme = url_scheme(self.url)
        whitelist = {"protocol_whitelist": PROTOCOL_WHITELIST.get(scheme, scheme)}
        av_options = {**whitelist, **DEFAULT_AV_OPTIONS.get(scheme, {}), **self.options.av_options}
        timeout = (self.options.open_timeout_s, self.options.stall_timeout_s)
        container = av.open(self.url, "r", format=self.options.format, options=av_options, timeout=timeout)
        if not container.streams.video:
            container.close()
            raise UnsupportedSourceError(f"{self.url} has no video track")
        self.counters.opens += 1
        return container

    def _start_session(self, container: InputContainer, index: int) -> Session:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = nominal_frame_rate(stream)
        info = SourceInfo(
            codec=ctx.name,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=float(rate) if rate else None,
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
            extradata=bytes(ctx.extradata or b""),
        )
        self.info = info
        log.info("opened %s: %s %dx%d fps=%s", self.url, info.codec, info.width, info.height, info.fps)
        return Session(index=index, info=info, stream=stream)

    def _demux(
        self, session: Session, container: InputContainer, keyframes_only: bool
    ) -> Generator[tuple[Session, av.Packet], None, bool]:
        """Yield packets of one session; returns True when at least one video packet arrived."""
        pacer = Pacer(self.clock, self.options.speed) if self.options.realtime else None
        got = False
        last_packet = self.clock.monotonic()
        read_until = 0.0  # stream seconds covered by the packets read
        try:
            for packet in container.demux(session.stream):
                if self.stop_event.is_set():
                    return got
                if packet.size == 0:
                    if not keyframes_only:
                        yield session, packet  # end of stream: lets a decoding consumer drain
                    continue
                now = self.clock.monotonic()
                if now - last_packet > self.options.stall_timeout_s and self.live:
                    self.counters.stalls += 1
                    log.warning("%s stalled: no packet for %.1fs; reopening", self.url, now - last_packet)
                    return got
                got = True
                self.counters.packets += 1
                if packet.pts is not None and packet.time_base is not None:
                    read_until = max(read_until, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                if pacer is not None and packet.pts is not None and packet.time_base is not None:
                    pacer.wait_until(float(packet.pts * packet.time_base))
                last_packet = self.clock.monotonic()
                if packet.is_keyframe:
                    self.counters.keyframes += 1
                elif keyframes_only:
                    continue
                yield session, packet
        except (av.FFmpegError, OSError) as exc:
            if isinstance(exc, av.ExitError | av.TimeoutError):
                self.counters.stalls += 1
            else:
                self.counters.read_errors += 1
            if not self.live:
                raise SourceReadError(f"reading {self.url} failed: {_reason(exc)}") from exc
            log.warning("reading %s failed (%s); reconnecting", self.url, _reason(exc))
            return got
        self.counters.end_of_streams += 1
        if not self.live:
            self._check_complete(session, read_until)
        return got

    def _check_complete(self, session: Session, read_until: float) -> None:
        """A file whose video ends well before the duration its header declares was cut or damaged:
        FFmpeg stops there without an error, so say it (SourceReadError, like a read failure)."""
        stream = session.stream
        if not stream.duration or not stream.time_base:
            return
        declared = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
        if read_until < EARLY_END_SHARE * declared and declared - read_until > 1.0:
            self.counters.read_errors += 1
            raise SourceReadError(f"{self.url} ended at {read_until:.1f} s of the {declared:.1f} s its header "
                                  "declares: the file is cut or damaged")

    def _sleep(self, seconds: float) -> None:
        """Sleep on the injected clock in short steps so ``stop`` is seen promptly."""
        remaining = seconds
        while remaining > 0 and not self.stop_event.is_set():
            step = min(remaining, 0.25)
            self.clock.sleep(step)
            remaining -= step


def _reason(exc: BaseException) -> str:
    """A one-line reason for an FFmpeg / OS error."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())
