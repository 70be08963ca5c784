"""Kafka test fixtures: unique topic names per test on the session's broker (``tests/conftest.py``)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames, topic_specs
from consumers.settings import TopicSettings


@pytest.fixture
def kafka_bus(kafka_bootstrap: str) -> KafkaBus:
    return KafkaBus(kafka_bootstrap)


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so every test has its own topics and groups."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topic_settings(topic_prefix: str) -> TopicSettings:
    """Topic settings under the test's own prefix, 4 partitions each."""
    return TopicSettings(prefix=topic_prefix, partitions=4)


@pytest.fixture
def kafka_topics(kafka_bus: KafkaBus, topic_settings: TopicSettings) -> TopicNames:
    """The five LiveTag topics, freshly created under the test's prefix."""
    kafka_bus.create_topics(topic_specs(topic_settings))
    return TopicNames.from_settings(topic_settings)


@pytest.fixture(scope="session")
def tiny_package_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-init model packages (exported once per session with the tests/engines helper)."""
    engines_tests = str(Path(__file__).resolve().parents[1] / "engines")
    if engines_tests not in sys.path:
        sys.path.insert(0, engines_tests)
    from engines_tiny_models import export_tiny_package

    root = tmp_path_factory.mktemp("tiny-models")
    return {role: export_tiny_package(root / role, role) for role in ("detector", "embedder")}


@pytest.fixture(scope="session")
def tiny_models(tiny_package_dirs: dict[str, Path]) -> tuple[object, object]:
    """(detector, embedder) loaded with ONNX Runtime from the tiny packages.

    The wiring tests need a detector and an embedder that behave the same on the same pixels, not
    trained ones: the gallery is built from the very frames the streams show.
    """
    from engines import load_detector, load_embedder

    detector = load_detector(tiny_package_dirs["detector"], score_threshold=0.3)
    embedder = load_embedder(tiny_package_dirs["embedder"])
    return detector, embedder
