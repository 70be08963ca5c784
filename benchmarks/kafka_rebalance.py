"""How reliably two group members of ``KafkaBus`` settle a rebalance, with and without the join wait.

kafka-python 3.0 gives up awaiting a JoinGroup/SyncGroup round when a poll's timeout expires; a member
polling with short timeouts can then stay without partitions. ``KafkaBusConsumer`` therefore polls a
member that holds no partitions with a long timeout (``_REBALANCE_POLL_MS``), using only
``KafkaConsumer.assignment()``. This benchmark measures that guard against plain short polls on a real
broker, the variants alternating round by round.

One round, on a fresh 4-partition topic and group: member A joins and takes all 4 partitions; B joins
and both poll every 0.2 s until they hold 2 each; B leaves; A polls until it holds all 4 again. A round
fails when a phase does not settle within ``--deadline`` seconds.

Usage::

    python benchmarks/kafka_rebalance.py [--rounds 10] [--bootstrap HOST:PORT] [--json out.json]

Without ``--bootstrap`` a local KRaft broker is started (jars fetched once with Maven).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.bus import TopicSpec  # noqa: E402
from consumers.bus.kafka import KafkaBus, KafkaBusConsumer  # noqa: E402
from consumers.bus.kafka_broker import KafkaBroker, ensure_jars, kafka_home  # noqa: E402

VARIANTS = ("join-wait", "short-polls")


@contextmanager
def variant(name: str) -> Iterator[None]:
    """Run the block with the consumer's join wait on (the shipped code) or off (plain short polls)."""
    if name == "join-wait":
        yield
        return
    original = KafkaBusConsumer._rebalancing
    KafkaBusConsumer._rebalancing = lambda self: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        KafkaBusConsumer._rebalancing = original  # type: ignore[method-assign]


def _poll_until(members: list[Any], done: Any, deadline_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if done():
            return time.monotonic() - start
        for member in members:
            member.poll(0.2)
    return time.monotonic() - start if done() else None


def one_round(bus: KafkaBus, deadline_s: float) -> dict[str, float | None]:
    """Phase times in seconds (None: did not settle) of one join / split / leave round."""
    topic = f"rb{uuid.uuid4().hex[:10]}"
    bus.create_topics([TopicSpec(topic, 4)])
    group = f"g-{topic}"
    a = bus.consumer([topic], group)
    b = None
    times: dict[str, float | None] = {"first_join": None, "split": None, "regain": None}
    try:
        times["first_join"] = _poll_until([a], lambda: len(a.assignment()) == 4, deadline_s)
        if times["first_join"] is None:
            return times
        b = bus.consumer([topic], group)
        times["split"] = _poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, deadline_s)
        if times["split"] is None:
            return times
        b.close()
        b = None
        times["regain"] = _poll_until([a], lambda: len(a.assignment()) == 4, deadline_s)
        return times
    finally:
        if b is not None:
            b.close()
        a.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per variant")
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds a phase may take")
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: start one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        broker = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = KafkaBroker(Path(work) / "broker", ensure_jars(kafka_home()))
            bootstrap = broker.start()
        try:
            bus = KafkaBus(bootstrap)
            results: dict[str, list[dict[str, float | None]]] = {name: [] for name in VARIANTS}
            for index in range(args.rounds):
                for name in VARIANTS:  # alternating, so both see the same broker conditions
                    with variant(name):
                        results[name].append(one_round(bus, args.deadline))
                print(f"round {index + 1}/{args.rounds}: " + ", ".join(
                    f"{name} {'ok' if all(v is not None for v in results[name][-1].values()) else 'STUCK'}"
                    for name in VARIANTS), flush=True)
        finally:
            if broker is not None:
                broker.stop()
    summary: dict[str, Any] = {}
    for name, rounds in results.items():
        settled = [r for r in rounds if all(v is not None for v in r.values())]
        summary[name] = {
            "rounds": len(rounds),
            "settled": len(settled),
            "split_s_median": statistics.median(r["split"] for r in settled) if settled else None,
            "split_s_max": max(r["split"] for r in settled) if settled else None,  # type: ignore[type-var]
            "regain_s_median": statistics.median(r["regain"] for r in settled) if settled else None,
        }
        s = summary[name]
        print(f"{name:12s} settled {s['settled']}/{s['rounds']}; split median {s['split_s_median']}, "
              f"max {s['split_s_max']}; regain median {s['regain_s_median']} (seconds)")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
