"""``livetag infer``: an inference consumer (frames topic -> matches topic) until SIGTERM."""

from __future__ import annotations

import argparse

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    add_setting_options(parser, "kafka", "topic-prefix", "models", "batch", "infer")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.observability.health import INFERENCE_CONDITIONS
    from consumers.observability.service import ServiceObservability
    from consumers.services.command_support import kafka_bus, quiet_kafka_logs, stop_on_signals
    from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
    from consumers.stage.builder import quiet_library_logs
    from consumers.stage.model_loading import load_models
    from engines.gallery import EmptyGalleryError

    quiet_library_logs()
    quiet_kafka_logs()
    obs = ServiceObservability.start(settings, INFERENCE_CONDITIONS)  # /healthz answers while models load
    try:
        detector, embedder = load_models(settings.models, settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
        obs.readiness.set("engines_loaded", True, f"{detector.spec.label} {embedder.spec.label}")
        bus = kafka_bus(settings)
        stage, follower = stage_from_gallery_topic(bus, settings, detector, embedder, metrics=obs.metrics)
        if follower.gallery is None or len(follower.gallery) == 0:
            follower.close()
            raise EmptyGalleryError(
                f"the gallery topic {follower.topic} is empty; publish one first with 'livetag gallery publish GALLERY_DIR'"
            )
        obs.readiness.set("gallery_bootstrapped", True, f"{len(follower.gallery)} images from {follower.topic}")
        stop = stop_on_signals()
        consumer = InferenceConsumer(bus, stage, settings, follower, group_id=settings.infer.group_id,
                                     metrics=obs.metrics, readiness=obs.readiness)
        print(f"inference consumer in group {settings.infer.group_id}: {settings.topics.name('frames')} -> "
              f"{settings.topics.name('matches')} (gallery: {len(follower.gallery)} images)", flush=True)
        try:
            counters = consumer.run(stop)
        finally:
            stage.close()  # the OCR worker and the decode threads
    finally:
        obs.close()
    print(f"inference stopped: {counters.consumed} frames, {counters.published} records published, "
          f"{counters.commits} commits ({consumer.commit_stats.refused} refused by rebalances)")
    return 0
