"""Fixtures shared by several test packages.

``kafka_bootstrap``: one real Kafka broker for the whole test session (tests/kafka and tests/ops).
Set ``LIVETAG_TEST_KAFKA_BOOTSTRAP=host:port`` to run against a broker that is already up; otherwise
the session starts a single-node KRaft broker (jars fetched once with Maven, see scripts/kafka/).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from consumers.bus.kafka_broker import KafkaBroker, ensure_jars, kafka_home


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of the session's broker."""
    named = os.environ.get("LIVETAG_TEST_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-broker"), ensure_jars(kafka_home()))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
