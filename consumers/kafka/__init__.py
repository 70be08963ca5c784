"""LiveTag on a Kafka cluster: the Kafka bus, the topics, the ingest worker, the inference consumer,
the gallery topic, replay into Kafka, and a local single-node KRaft broker for development and tests."""
