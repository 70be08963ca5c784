"""``livetag infer``: an inference consumer (frames topic -> matches topic) until SIGTERM."""

from __future__ import annotations

import argparse

from consumers.kafka.command_support import add_kafka_arguments
from consumers.model_loading import add_model_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--group", default="livetag-inference", help="consumer group on the frames topic")
    parser.add_argument("--max-batch", type=int, default=None, help="frames per model call (default: settings)")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="longest wait for a batch (default: settings)")
    parser.add_argument("--gallery-timeout", type=float, default=60.0,
                        help="seconds to read the gallery topic at start (default 60)")


def run(args: argparse.Namespace) -> int:
    from consumers.embedded import quiet_library_logs
    from consumers.kafka.command_support import (
        kafka_bus,
        quiet_kafka_logs,
        settings_from_args,
        stop_on_signals,
    )
    from consumers.kafka.infer import InferenceConsumer, build_stage
    from consumers.model_loading import load_models, model_choice
    from consumers.observability.health import INFERENCE_CONDITIONS
    from consumers.observability.instrument import instrument_stage
    from consumers.observability.service import ServiceObservability
    from engines.gallery import EmptyGalleryError

    quiet_library_logs()
    quiet_kafka_logs()
    settings = settings_from_args(args)
    batch = {f"batch__{n}": getattr(args, n) for n in ("max_batch", "max_wait_ms") if getattr(args, n) is not None}
    if batch:
        settings = settings.with_overrides(**batch)
    obs = ServiceObservability.start(settings, INFERENCE_CONDITIONS)  # /healthz answers while models load
    try:
        detector, embedder = load_models(model_choice(args), settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
        obs.readiness.set("engines_loaded", True, f"{detector.spec.label} {embedder.spec.label}")
        bus = kafka_bus(settings)
        stage, follower = build_stage(bus, settings, detector, embedder, gallery_timeout_s=args.gallery_timeout)
        if follower.gallery is None or len(follower.gallery) == 0:
            follower.close()
            raise EmptyGalleryError(
                f"the gallery topic {follower.topic} is empty; publish one first with 'livetag gallery publish GALLERY_DIR'"
            )
        obs.readiness.set("gallery_bootstrapped", True, f"{len(follower.gallery)} images from {follower.topic}")
        instrument_stage(stage, obs.metrics)
        stop = stop_on_signals()
        consumer = InferenceConsumer(bus, stage, settings, follower, group_id=args.group,
                                     metrics=obs.metrics, readiness=obs.readiness)
        print(f"inference consumer in group {args.group}: {settings.topics.name('frames')} -> "
              f"{settings.topics.name('matches')} (gallery: {len(follower.gallery)} images)", flush=True)
        counters = consumer.run(stop)
    finally:
        obs.close()
    print(f"inference stopped: {counters.consumed} frames, {counters.published} records published, "
          f"{counters.commits} commits ({consumer.commit_stats.refused} refused by rebalances)")
    return 0
