"""The embedded default: the shipped sample, the shipped models, matches printed as they happen.

A sample folder holds shop images (``image/<item_id>/<n>.jpg``, optional ``image_annotation/``) and
one or more videos (``video/*.mp4``, or video files at the top level). The gallery is built at start;
then the videos are replayed (real time by default) through the same stages as the Kafka deployment,
over the in-process bus. Nothing is downloaded and no broker is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from consumers.services.embedded import EventSink, PipelineReport
from consumers.services.replay import replay, source_specs
from consumers.settings import Settings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.model_loading import load_models
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError
from stream.source import VIDEO_FILE_SUFFIXES

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLE = REPO_ROOT / "samples" / "demo"


class SampleError(LiveTagError):
    """The demo sample folder is missing or incomplete."""


@dataclass(frozen=True)
class Sample:
    """Where a sample's shop images, annotations and videos are."""

    images: Path
    annotations: Path | None
    videos: list[Path]


def find_sample(folder: Path) -> Sample:
    """Locate the parts of a sample folder; raises SampleError saying what is missing."""
    if not folder.is_dir():
        raise SampleError(f"sample folder {folder} not found; pass --sample DIR (shop images in image/, videos in video/)")
    images = next((folder / n for n in ("image", "images", "shop") if (folder / n).is_dir()), None)
    if images is None:
        raise SampleError(f"{folder} has no image/ folder of shop images (<item_id>/<n>.jpg)")
    annotations = folder / "image_annotation"
    video_dir = folder / "video" if (folder / "video").is_dir() else folder
    videos = sorted(p for p in video_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_FILE_SUFFIXES)
    if not videos:
        raise SampleError(f"{folder} has no video (looked in {video_dir} for {', '.join(VIDEO_FILE_SUFFIXES)})")
    return Sample(images, annotations if annotations.is_dir() else None, videos)


def run_demo(
    sample: Sample,
    settings: Settings,
    on_event: EventSink,
    clock: Clock | None = None,
    progress: bool = False,
    announce: Callable[[str], None] | None = None,
) -> tuple[PipelineReport, int]:
    """Build the gallery from the sample's shop images and replay its videos.

    Returns:
        ``(report, gallery_images)``.
    """
    clock = clock or SystemClock()
    detector, embedder = load_models(settings.models, settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
    shop = find_shop_images(sample.images, sample.annotations)
    gallery = to_index(build_gallery(shop, detector, embedder, progress=progress,
                                   views=settings.models.gallery_view_names))
    if announce is not None:
        announce(f"gallery: {len(gallery)} shop images of {len(gallery.item_ids())} products; "
                 f"models {detector.spec.label}, {embedder.spec.label}")
    stage = build_stage(detector, embedder, gallery, settings, clock)
    specs = source_specs([str(v) for v in sample.videos])
    report = replay(stage, specs, settings, on_event, clock=clock, progress=progress)
    return report, len(gallery)
