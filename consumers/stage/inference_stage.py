"""The inference stage: frame records in, match events and dead letters out.

One instance serves every stream of a consumer (the embedded pipeline and the Kafka inference
consumer use it unchanged)::

    records of topic frames --decode--> pictures (YUV planes) --detect (one batch across streams)-->
    boxes --crop (+10 %), converted to RGB--> crops --embed (one batch)--> vectors --gallery search within the
    stream's catalog--> hits --per-stream voter--> match events (topic matches, key = stream id)

A record that is not a frame packet, or whose packet does not decode, becomes a dead letter (topic
``dlq``) with the reason; the other records of the batch go on. Any exception while handling one
record counts, not only the project's own errors: no single record may stop a consumer. If the
models fail on a whole batch, the frames are retried one by one so that only the offending frame
is dead-lettered.

Catalog restriction: a record's ``catalog`` header names the seller's catalog; its item ids come
from ``catalogs`` (an unknown catalog matches nothing). ``items`` (replay ``--catalog IDS``) fixes
the allowed items for every stream instead. Without either, the whole gallery is searched.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np

from consumers.bus import Record
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.frame_record import CATALOG_HEADER
from consumers.messages.match_event import FRAME_PTS_HEADER, MatchEvent
from consumers.messages.segment_state import SegmentState, tombstone
from consumers.settings import PipelineSettings, TopicSettings
from consumers.stage.catalog_scope import CatalogResolver, CatalogScope
from consumers.stage.frame_age import FrameAge
from consumers.stage.frame_analysis import FrameAnalysis, analyse_frames, batch_crops
from consumers.stage.frame_hits import (
    best_hits,
    frame_observations,
    hits_per_crop,
    named_items,
    uncounted_hits,
)
from consumers.stage.frames import (
    DecodedFrame,
    FrameObserver,
    FrameRecordError,
    StageCounters,
    StaleFrame,
    newest_per_stream,
)
from consumers.stage.model_calls import ModelCalls
from consumers.stage.motion_cue import MotionCue, thumbnail
from consumers.stage.presentation_prior import frame_presentation
from consumers.text.ocr import OcrScheduler
from consumers.text.transcripts import TranscriptSegment
from consumers.voting.voter import GalleryHit, StreamVoter
from engines.picture import Picture
from stream.clock import Clock
from stream.errors import LiveTagError
from stream.packet import FramePacket, PacketFormatError

log = logging.getLogger(__name__)

class InferenceStage:
    """Frame records -> match event records and dead-letter records.

    Args:
        models: The decoder, detector, embedder and gallery, behind timed calls.
        voter: The per-stream voter.
        settings: Per-frame thresholds (sold threshold, crop expansion, top-k, ...).
        topics: Output topic names (``matches``, ``dlq``).
        clock: Injected clock (dead-letter timestamps).
        catalogs: Catalog id -> item ids, for the ``catalog`` header.
        items: Fixed item ids allowed for every stream (overrides the header).
        observer: Optional per-frame callback (evaluation ranks items with it).
        ocr: Reads on-screen text of sampled frames into the voter's text cues (None: no OCR).
        segment_group: The consumer group whose open segments this stage writes to the ``segments``
            topic with its events and hands over on revoke instead of ending them
            (consumers.messages.segment_state); None: no handover.
    """

    def __init__(
        self,
        models: ModelCalls,
        voter: StreamVoter,
        settings: PipelineSettings,
        topics: TopicSettings,
        clock: Clock,
        catalogs: CatalogResolver | None = None,
        items: Collection[str] | None = None,
        observer: FrameObserver | None = None,
        ocr: OcrScheduler | None = None,
        segment_group: str | None = None,
    ) -> None:
        self.models = models
        self.voter = voter
        self.settings = settings
        self.clock = clock
        self.scope = CatalogScope(catalogs, items)
        self.observer = observer
        self.ocr = ocr
        self.matches_topic = topics.name("matches")
        self.dlq_topic = topics.name("dlq")
        self.segment_group = segment_group
        self.segments_topic = topics.name("segments") if segment_group is not None else None
        self.counters = StageCounters()
        self.age = FrameAge(settings.max_frame_age_s)  # live shedding by age (off at 0)
        self.motion = (MotionCue(settings.motion_window_s, clock, voter.settings.idle_timeout_s, voter.settings.max_streams)
                       if settings.motion_window_s else None)
        self._partitions: OrderedDict[str, tuple[str, int]] = OrderedDict()  # stream -> its frames' partition
        self._infer_lock = threading.Lock()  # the models and the voter: inference thread vs revoke callback
        self._revoked: set[tuple[str, int]] = set()  # taken away: frames of them still queued are not analysed
        #: Told of counted drops as (queue, policy, count); with metrics, they are counted there.
        self.on_drop: Callable[[str, str, int], None] | None = models.metrics.record_drops if models.metrics else None

    # -- the record interface --------------------------------------------------------------------
    def process(self, records: Sequence[Record]) -> list[Record]:
        """Run a batch of frame records; returns match-event and dead-letter records."""
        frames, outputs = self.decode_records(records)
        return outputs + self.infer_frames(frames)

    def decode_records(self, records: Sequence[Record]) -> tuple[list[DecodedFrame], list[Record]]:
        """First half of :meth:`process` (may run on another thread): decode the records.

        Returns:
            ``(frames, dead_letters)``: the decoded frames in input order, and dead-letter records
            for those that are not frame packets or do not decode.
        """
        self.counters.records += len(records)
        if self.settings.newest_frame_wins:
            records, superseded = newest_per_stream(records)
            self.counters.superseded += superseded
            if superseded and self.on_drop is not None:
                self.on_drop("frames", "superseded", superseded)
        letters: list[Record] = []
        wanted: list[tuple[Record, FramePacket]] = []
        now = self.clock.now()
        stale = 0
        for record in records:
            try:
                wanted.append((record, self._packet(record, now, place=len(wanted))))
            except StaleFrame:
                stale += 1
            except Exception as exc:  # noqa: BLE001 - no single record may stop the consumer
                letters.append(self._dead_letter(record, exc, "decode"))
        if stale:
            self._count_stale(stale)
        frames: list[DecodedFrame] = []
        results = self.models.decode_all([p for _, p in wanted])
        decoded_at = self.clock.now()
        self.age.observe_decode(decoded_at - now, len(wanted))
        for (record, packet), decoded in zip(wanted, results, strict=True):
            if isinstance(decoded, Exception):
                letters.append(self._dead_letter(record, decoded, "decode"))
            else:
                frames.append(self._decoded(record, packet, *decoded, decoded_at))
        return frames, letters

    def _count_stale(self, count: int) -> None:
        self.counters.dropped_stale += count
        if self.on_drop is not None:
            self.on_drop("frames", "stale", count)

    def infer_frames(self, frames: Sequence[DecodedFrame]) -> list[Record]:
        """Second half of :meth:`process`: models, search and votes for decoded frames.

        Frames that grew older than ``max_frame_age_s`` while they waited for the models are shed
        here too (marked ``shed``, counted). When the models fail on the batch, the frames are
        retried one by one and only the failing ones become dead letters.
        """
        if self.age.on:
            shed = self.age.mark_stale(frames, self.clock.now())
            if shed:
                self._count_stale(shed)
                frames = [frame for frame in frames if not frame.shed]
        with self._infer_lock:
            return self._infer_batch(self._still_owned(frames))

    def _still_owned(self, frames: Sequence[DecodedFrame]) -> list[DecodedFrame]:
        """Frames whose partition was revoked while they waited are not analysed (marked ``shed``):
        their commit is refused and the new owner processes them; analysing them here would open
        segments the new owner also opens."""
        if not self._revoked:
            return list(frames)
        kept = []
        for frame in frames:
            if (frame.record.topic, frame.record.partition) in self._revoked:
                frame.shed = True
                self.counters.skipped_revoked += 1
            else:
                kept.append(frame)
        return kept

    def assign(self, partitions: Collection[tuple[str, int]]) -> None:
        """The consumer was assigned these ``(topic, partition)`` s (again): their frames count."""
        with self._infer_lock:
            self._revoked -= set(partitions)

    def revoke(self, partitions: Collection[tuple[str, int]]) -> list[Record]:
        """The consumer lost these ``(topic, partition)`` s; returns the records to publish now.

        With a ``segment_group`` the open segments of their streams go to the ``segments`` topic for the
        new owner to carry on; otherwise they end (``match.ended``) so that the new owner's segments
        do not overlap them.
        """
        wanted = set(partitions)
        with self._infer_lock:
            self._revoked |= wanted
            streams = [s for s, tp in list(self._partitions.items()) if tp in wanted]
            if self.segments_topic is None:
                return self.end_streams(streams)
            out = [self._segment_record(stream_id) for stream_id in streams if self.voter.current(stream_id)]
            for stream_id in streams:
                self.voter.drop_stream(stream_id)
                self._forget(stream_id)
            return out

    def adopt(self, segments: Mapping[str, SegmentState], partitions: Mapping[str, tuple[str, int]]) -> int:
        """Carry on the open segments of streams whose partitions this consumer was assigned.

        Args:
            segments: Stream id -> its open segment (read from the ``segments`` topic).
            partitions: Stream id -> ``(frames topic, partition)`` it arrives on.

        Returns:
            How many segments the voter took (a stream it already holds keeps its own state).
        """
        with self._infer_lock:
            taken = 0
            for stream_id, segment in segments.items():
                if self.voter.adopt(segment):
                    self._partitions[stream_id] = partitions[stream_id]
                    taken += 1
            return taken

    def _infer_batch(self, frames: Sequence[DecodedFrame]) -> list[Record]:
        outputs: list[Record] = []
        if frames:
            try:
                outputs += self._infer(list(frames))
            except Exception as exc:  # noqa: BLE001 - find the one frame that fails, dead-letter only it
                log.warning("batch of %d frames failed (%s); retrying one by one", len(frames), exc)
                for frame in frames:
                    try:
                        outputs += self._infer([frame])
                    except Exception as one:  # noqa: BLE001 - no single record may stop the consumer
                        outputs.append(self._dead_letter(frame.record, one, "infer"))
        outputs += self._events(self.voter.evict_idle(), None)
        if self.models.metrics is not None:  # after the batch and the idle eviction
            self.models.metrics.set_active_streams(len(self.voter))
        return outputs

    def close(self) -> None:
        """Stop the stage's background work (the OCR worker, the decode threads)."""
        if self.ocr is not None:
            self.ocr.close()
        self.models.close()

    def add_text(self, segment: TranscriptSegment) -> None:
        """A stream's title, transcript piece or on-screen text (ignored when text cues are off)."""
        if self.voter.text is not None:
            self.voter.text.add(segment.stream_id, segment.text, segment.source, segment.start)

    def end_streams(self, stream_ids: Sequence[str], end_pts: Mapping[str, float] | None = None) -> list[Record]:
        """The streams stopped: end their running matches; returns the ``match.ended`` records."""
        out: list[Record] = []
        for stream_id in stream_ids:
            out += self._events(self.voter.end_stream(stream_id), (end_pts or {}).get(stream_id))
            self._forget(stream_id)
        return out

    def _forget(self, stream_id: str) -> None:
        self.models.decoder.drop(stream_id)
        if self.ocr is not None:
            self.ocr.forget(stream_id)
        if self.motion is not None:
            self.motion.forget(stream_id)
        self._partitions.pop(stream_id, None)

    # -- steps -------------------------------------------------------------------------------------
    def _packet(self, record: Record, now: float, place: int) -> FramePacket:
        try:
            packet = FramePacket.from_record(record.key, record.value, record.headers)
        except PacketFormatError as exc:
            raise FrameRecordError(str(exc)) from exc
        if not self.age.admits(packet.wallclock, now, place):
            raise StaleFrame  # would be too old at the models (consumers.stage.frame_age): shed before decoding
        return packet

    def _decoded(self, record: Record, packet: FramePacket, picture: Picture, scaled: np.ndarray | None,
                 decoded_at: float) -> DecodedFrame:
        self._partitions[packet.stream_id] = (record.topic, record.partition)
        self._partitions.move_to_end(packet.stream_id)
        while len(self._partitions) > self.voter.settings.max_streams:
            self._partitions.popitem(last=False)
        raw_catalog = record.header(CATALOG_HEADER)
        catalog = raw_catalog.decode("utf-8", "replace") if raw_catalog else None
        empty = picture.width == 0 or picture.height == 0  # the detector says so
        thumb = thumbnail(picture, scaled) if self.motion is not None and not empty else None
        return DecodedFrame(record, packet, picture, catalog, scaled=scaled, thumb=thumb, decoded_at=decoded_at)

    def _scopes(self, frames: Sequence[DecodedFrame]) -> dict[str | None, frozenset[str] | None]:
        """catalog -> the items its streams may match (None: the whole gallery), once per batch."""
        scopes: dict[str | None, frozenset[str] | None] = {}
        for frame in frames:
            if frame.catalog not in scopes:
                scopes[frame.catalog] = self.scope.items_of(frame.catalog)
        self.counters.unknown_catalog = self.scope.unknown_searches
        return scopes

    def _presentation(self, picture: Picture, boxes: np.ndarray) -> np.ndarray:
        """(N,) size-and-place prior of a frame's (N, 4) boxes, with the person mask when the stage
        has one (:mod:`consumers.stage.presentation_prior`); ones with the prior off."""
        if not self.settings.presentation_prior:
            return np.ones(len(boxes), np.float32)
        coverage_of = self.models.person_coverage if self.models.person is not None else None  # masks need RGB
        return frame_presentation(picture, boxes, coverage_of)

    def prepare_frames(self, frames: Sequence[DecodedFrame]) -> None:
        """Run the models on a decoded batch ahead of :meth:`infer_frames` (``batch.model_workers``:
        several batches may be prepared at once, each on its own thread, while this stage votes on
        earlier ones). Frames already too old are left out; a failure is left for
        :meth:`infer_frames` to meet again and dead-letter."""
        now = self.clock.now()
        self._analyse([f for f in frames if self.age.fresh(f.packet.wallclock, now)])

    def _analyse(self, frames: Sequence[DecodedFrame]) -> None:
        """Run the models' part (:func:`analyse_frames`) on ``frames`` as one batch and attach it."""
        if frames:
            for frame, analysis in zip(frames, analyse_frames(frames, self.models, self.settings, self._presentation),
                                       strict=True):
                frame.analysis = analysis

    def _infer(self, frames: list[DecodedFrame]) -> list[Record]:
        s = self.settings
        self._analyse([f for f in frames if f.analysis is None])  # those not prepared ahead
        analyses: list[FrameAnalysis] = [f.analysis for f in frames if f.analysis is not None]  # all of them now
        scopes = self._scopes(frames)
        named = named_items(self.voter.text, frames, scopes)
        named_boxes = self.voter.text is not None and self.voter.text.settings.named_boxes
        owners, vectors, garment = batch_crops(frames, analyses, named if named_boxes else {}, s, self.models)
        detections = [a.detections for a in analyses]
        moving = None if self.motion is None else [self.motion.factors(
            f.packet.stream_id, f.packet.pts_seconds, f.picture, d.boxes, f.thumb) for f, d in zip(frames, detections, strict=True)]
        hits_of_crop = hits_per_crop(frames, owners, vectors, named, scopes, self._search)
        per_frame = frame_observations(analyses, owners, hits_of_crop, garment, moving,
                                       self.voter.settings.min_similarity, s.category_top_k)
        self.counters.frames += len(frames)
        self.counters.detections += len(owners)
        weak = ([[] for _ in frames] if self.observer is None  # hits below the floor inform observers only
                else uncounted_hits(owners, hits_of_crop, detections, self.voter.settings.min_similarity, len(frames)))
        out: list[Record] = []
        for frame, observations, below in zip(frames, per_frame, weak, strict=True):
            pts = frame.packet.pts_seconds
            if self.ocr is not None:
                self.ocr.offer(frame.packet.stream_id, pts, frame.picture)
            if self.observer is not None:
                shown = best_hits(frame.packet.stream_id, observations, self.voter.text)
                self.observer(frame.packet.stream_id, pts, shown + below)
            with self.models.timed("vote"):
                events = self.voter.observe(frame.packet.stream_id, pts, observations, frame.packet.wallclock)
            out += self._events(events, pts)
        return out

    def _search(self, vectors: np.ndarray, allowed: Collection[str] | None) -> list[list[GalleryHit]]:
        return self.models.search(vectors, self.settings.top_k, allowed)

    def _events(self, events: Sequence[MatchEvent], frame_pts: float | None) -> list[Record]:
        """Match-event records; ``frame_pts`` (the stream time of the frame that caused them) goes
        into the ``lt-frame-pts`` header when known."""
        self.counters.events += len(events)
        out = []
        for event in events:
            key, value, headers = event.to_record()
            if frame_pts is not None:
                headers = [*headers, (FRAME_PTS_HEADER, repr(float(frame_pts)).encode())]
            out.append(Record(self.matches_topic, key, value, headers))
        if self.segments_topic is not None:  # the segment state after these events, once per stream
            out += [self._segment_record(s) for s in dict.fromkeys(e.stream_id for e in events)]
        return out

    def _segment_record(self, stream_id: str) -> Record:
        """The stream's open segment on ``segments``, or a tombstone when none runs."""
        assert self.segments_topic is not None and self.segment_group is not None
        state = self.voter.open_segment(stream_id)
        if state is None:
            return tombstone(self.segments_topic, stream_id, self.segment_group)
        return state.to_record(self.segments_topic, self.segment_group)

    def _dead_letter(self, record: Record, error: BaseException, stage: str) -> Record:
        self.counters.dead_letters += 1
        # A record's own fault is a warning; any other exception may be a bug: its traceback is logged.
        level = logging.WARNING if isinstance(error, LiveTagError) else logging.ERROR
        log.log(level, "dead letter (%s) %s[%d]@%d: %s", stage, record.topic, record.partition, record.offset, error,
                exc_info=None if level == logging.WARNING else error)
        key, value, headers = DeadLetter.from_exception(record, error, stage, self.clock.now()).to_record()
        return Record(self.dlq_topic, key, value, headers)
