"""``livetag eval tianchi``: build the gallery from ROOT/image, replay every ROOT/video, score.

With text cues on (``settings.text.enabled``), item titles come from ROOT/image_text/<item>.txt and
each video's transcript from ROOT/video_text/<video>.txt, as a deployment would get them from the
catalog and from a speech-to-text service.

The replay is the embedded pipeline at full speed (the same stages as production); the match
events and per-frame hits of each video are gathered into a :class:`MatchSummary`, then scored by
:func:`training.evaluation.tianchi_eval.evaluate`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.services.embedded import PipelineReport
from consumers.services.replay import replay, source_specs
from consumers.settings import Settings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, gallery_refs, to_index
from consumers.stage.model_loading import load_models
from consumers.text.transcripts import TranscriptSegment, read_titles, read_transcripts
from engines.base import Detector, Embedder
from engines.gallery import GalleryIndex
from stream.clock import Clock, SystemClock
from stream.source import nominal_frame_rate
from training.evaluation.match_summary import Hit, MatchSummary
from training.evaluation.tianchi_eval import GalleryImageRef, ReplayedVideo, answer, evaluate
from training.evaluation.tianchi_truth import (
    DatasetLayoutError,
    check_layout,
    list_videos,
    read_truth,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoTiming:
    """Frame rate and first timestamp of a video file."""

    fps: float
    start_s: float


def probe_timing(path: Path) -> VideoTiming | None:
    """Frame rate and start time of the first video track, or None when the file does not open."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            rate = nominal_frame_rate(stream)
            start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
            return VideoTiming(float(rate) if rate else 25.0, start)
    except (av.FFmpegError, OSError):
        return None


def run_tianchi_eval(
    root: Path,
    settings: Settings,
    refine: bool = False,
    clock: Clock | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Evaluate the pipeline on ``root`` (Tianchi layout): models from ``settings.models``, videos
    read as ``settings.replay`` says.

    Returns:
        ``(report, result)``: the report (metrics, per-video rows, run figures) and the
        challenge submission.

    Raises:
        DatasetLayoutError: ``root`` lacks image/ or video/, or has no video.
    """
    clock = clock or SystemClock()
    check_layout(root)
    videos = list_videos(root)
    if not videos:
        raise DatasetLayoutError(f"{root / 'video'} holds no video; nothing to evaluate")
    truth = read_truth(root)  # before the replay: a malformed annotation stops the run at once, not at the end
    annotations = root / "image_annotation"
    shop = find_shop_images(root / "image", annotations if annotations.is_dir() else None)
    detector, embedder = load_models(settings.models, settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
    started = time.perf_counter()
    text_on = settings.text.enabled
    titles = read_titles(root / "image_text") if text_on and (root / "image_text").is_dir() else {}
    gallery = to_index(build_gallery(shop, detector, embedder, progress=progress, titles=titles,
                                   views=settings.models.gallery_view_names))
    gallery_s = time.perf_counter() - started

    transcripts = read_transcripts(root / "video_text") if text_on and (root / "video_text").is_dir() else {}
    started = time.perf_counter()
    summaries, run = _replay(videos, detector, embedder, gallery, settings, clock, progress, transcripts)
    # The challenge needs an item per video. A video where no box reached the detection threshold
    # gets one more replay on every box the detector's decode keeps, for a last-resort answer. A
    # video of which not one frame was read (listed in source_errors) is not replayed: it stays
    # unanswered, and the other videos keep theirs.
    unread = [p.stem for p in videos if summaries[p.stem].frames == 0]
    silent = [p for p in videos if answer(summaries[p.stem]) is None and summaries[p.stem].frames > 0]
    if silent:
        log.info("%d video(s) without any hit, replayed on every detected box: %s", len(silent), [p.stem for p in silent])
        every_box, _ = load_models(settings.models, 0.0, settings.pipeline.nms_iou)
        summaries.update(_replay(silent, every_box, embedder, gallery, settings, clock, progress, transcripts)[0])
    replay_s = time.perf_counter() - started

    replayed = []
    for path in videos:
        summary = summaries[path.stem]
        timing = probe_timing(path) or VideoTiming(25.0, 0.0)
        replayed.append(ReplayedVideo(path.stem, summary, timing.fps, timing.start_s))
    truths = {p.stem: truth.video(p.stem) for p in videos}
    refs = {image_id: GalleryImageRef(item, name) for image_id, (item, name) in gallery_refs(gallery).items()}
    report, result = evaluate(replayed, truths, refs, truth.shop_boxes, truth.segments, refine=refine)
    report["run"] = {
        "gallery_images": len(gallery),
        "gallery_items": len(gallery.item_ids()),
        "gallery_build_s": round(gallery_s, 2),
        "replay_s": round(replay_s, 2),
        "frames": run.frames_consumed,
        "frames_per_s": round(run.frames_consumed / replay_s, 2) if replay_s > 0 else None,
        "events": run.events,
        "dead_letters": run.dead_letters,
        "source_errors": run.source_errors,
        "replayed_on_every_box": [p.stem for p in silent],
        "videos_without_frames": unread,
        "sampling": settings.replay.sampling,
        "text": {"titles": len(titles), "transcripts": len(transcripts), "ocr": settings.text.ocr_mode}
        if text_on else None,
        "models": {"detector": detector.spec.label, "embedder": embedder.spec.label},
    }
    return report, result


def _replay(videos: list[Path], detector: Detector, embedder: Embedder, gallery: GalleryIndex, settings: Settings,
            clock: Clock, progress: bool, transcripts: Mapping[str, Sequence[TranscriptSegment]],
            ) -> tuple[dict[str, MatchSummary], PipelineReport]:
    """Replay ``videos`` through a fresh stage; per video (by file stem) its match summary, closed
    at the stream's end, and the pipeline report."""
    summaries = {path.stem: MatchSummary(path.stem) for path in videos}
    lock = threading.Lock()

    def on_frame(stream_id: str, pts: float, hits: list[Hit]) -> None:
        with lock:
            summaries[stream_id].add_frame(pts, hits)

    def on_event(event: dict[str, Any], frame_pts: float | None) -> None:
        with lock:
            summaries[event["stream_id"]].add_event(event)

    stage = build_stage(detector, embedder, gallery, settings, clock, observer=on_frame)
    for path in videos:
        for segment in transcripts.get(path.stem, ()):
            stage.add_text(segment)
    try:
        run = replay(stage, source_specs([str(p) for p in videos]), settings, on_event, clock=clock, progress=progress)
    finally:
        stage.close()
    for stem, summary in summaries.items():
        summary.close(run.stream_ends.get(stem))
    return summaries, run
