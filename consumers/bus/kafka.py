"""``KafkaBus``: the :mod:`consumers.bus` interface on a real Kafka cluster, through kafka-python.

Services written against :class:`consumers.bus.Bus` run unchanged on either bus. Delivery follows the
bus contract: producers use ``acks=all`` with idempotence; consumers never auto-commit, so a runner
commits only what it processed and published. After a rebalance a commit for a lost partition raises
:class:`consumers.bus.CommitFailedError`; the records are delivered again to the new owner.
The clients live in :mod:`consumers.bus.kafka_producer` and :mod:`consumers.bus.kafka_consumer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from consumers.bus import BusError, OffsetReset, RebalanceCallback, TopicSpec
from consumers.bus.kafka_consumer import KafkaBusConsumer
from consumers.bus.kafka_producer import KafkaBusProducer, connect

if TYPE_CHECKING:
    from consumers.settings import KafkaSettings

__all__ = ["KafkaBus", "KafkaBusConsumer", "KafkaBusProducer"]


class KafkaBus:
    """The bus on a Kafka cluster.

    Args:
        bootstrap: ``host:port[,host:port]`` of the cluster.
        client_config: kafka-python settings shared by every client (security: ``security_protocol``,
            ``sasl_mechanism``, ``sasl_plain_username`` ... ``ssl_cafile``), see ``KafkaSettings``.
        producer_config: Extra producer settings (override the defaults above).
        consumer_config: Extra consumer settings.
        async_commit: Overlap a positions commit with the next batch (see ``KafkaBusConsumer.commit``).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_config: Mapping[str, Any] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        async_commit: bool = True,
    ) -> None:
        if not bootstrap:
            raise BusError("no Kafka bootstrap address: pass --bootstrap host:port or set LIVETAG_KAFKA_BOOTSTRAP_SERVERS")
        self.bootstrap = bootstrap
        self._client = {"bootstrap_servers": bootstrap.split(","), **dict(client_config or {})}
        self._producer_config = dict(producer_config or {})
        self._consumer_config = dict(consumer_config or {})
        self._async_commit = async_commit

    @classmethod
    def from_settings(cls, settings: KafkaSettings, **kwargs: Any) -> KafkaBus:
        """A bus for the validated connection settings (bootstrap, SASL/SSL, client id)."""
        client = settings.client_kwargs()
        bootstrap = ",".join(client.pop("bootstrap_servers"))
        return cls(bootstrap, client_config=client, **kwargs)

    def producer(self) -> KafkaBusProducer:
        return KafkaBusProducer(self._client, self._producer_config)

    def consumer(
        self,
        topics: Sequence[str],
        group_id: str | None,
        *,
        auto_offset_reset: OffsetReset = "earliest",
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> KafkaBusConsumer:
        if auto_offset_reset not in ("earliest", "latest"):
            raise BusError(f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}")
        return KafkaBusConsumer(
            topics, group_id, self._client, self._consumer_config, auto_offset_reset, on_assign, on_revoke,
            self._async_commit,
        )

    def admin(self) -> Any:
        """A kafka-python ``KafkaAdminClient`` with this bus's connection settings (caller closes it)."""
        from kafka import KafkaAdminClient

        return connect(KafkaAdminClient, self._client, "admin client")

    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics; an existing topic must have the partition count asked for."""
        from consumers.bus.topics import ensure_topics

        admin = self.admin()
        try:
            ensure_topics(admin, specs)
        finally:
            admin.close()
