"""Several batches in the models at once (``batch.model_workers``): the same events in the same
order as one model thread, every offset committed, and a batch whose models failed run again."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from stage_world import SETTINGS, bus_of, produce_keyframes

from consumers.settings import BatchSettings, ModelSettings, Settings, SettingsError
from consumers.stage.builder import build_stage
from consumers.stage.loops import run_consumer_loop
from stream.clock import FakeClock


def _run(world: dict[str, Any], workers: int, fail_prepare: bool = False) -> tuple[list[tuple[Any, ...]], Any, set[str]]:
    """Replay the world's two streams through the decoupled loop; returns the published match
    events, the loop's counters and the names of the threads that ran ``prepare_frames``."""
    clock = FakeClock()
    bus, producer = bus_of(clock)
    produced = produce_keyframes(producer, world, "s1") + produce_keyframes(producer, world, "s2")
    batch = BatchSettings(max_batch=2, max_wait_ms=0.0, model_workers=workers)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"], SETTINGS, clock)
    preparers: set[str] = set()
    prepare = stage.prepare_frames

    def watched(frames: Any) -> None:
        preparers.add(threading.current_thread().name)
        if fail_prepare:
            raise RuntimeError("the models failed on this thread")
        prepare(frames)

    stage.prepare_frames = watched  # type: ignore[method-assign]
    stop = threading.Event()
    stop.set()  # drain what is there, then return
    try:
        counters = run_consumer_loop(bus.consumer(["frames"], "infer"), bus.producer(), stage, stop, batch)
    finally:
        stage.close()
    assert counters.consumed == produced
    matches = bus.consumer(["matches"], "reader").poll(timeout_s=0.1, max_records=10_000)
    # the event id includes the frames' ingest wall clock, which differs between two replays
    return [(r.key, r.header("event"), {k: v for k, v in json.loads(r.value).items() if k != "event_id"})
            for r in matches], counters, preparers


def test_two_model_workers_publish_what_one_model_thread_publishes(world: dict[str, Any]) -> None:
    one, one_counters, one_preparers = _run(world, 1)
    two, two_counters, two_preparers = _run(world, 2)
    assert one and two == one  # same events, same order, same payloads
    assert two_counters.commits == one_counters.commits and two_counters.published == one_counters.published
    assert one_preparers == set()  # one worker: the models run on the inference thread, as before
    assert two_preparers and all(name.startswith("livetag-models") for name in two_preparers)


def test_a_batch_whose_models_failed_on_a_worker_is_run_again_in_order(world: dict[str, Any]) -> None:
    one, _, _ = _run(world, 1)
    again, counters, preparers = _run(world, 2, fail_prepare=True)
    assert preparers and again == one and counters.commits > 0


def test_model_workers_are_checked_and_need_onnx_runtime() -> None:
    with pytest.raises(SettingsError, match=r"batch\.model_workers"):
        BatchSettings(model_workers=0)
    with pytest.raises(SettingsError, match=r"batch\.model_workers.*onnxruntime"):
        Settings(models=ModelSettings(backend="torch"), batch=BatchSettings(model_workers=2))
    assert Settings(batch=BatchSettings(model_workers=2)).batch.model_workers == 2
