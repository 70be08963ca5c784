"""Services and wiring: bus, pipeline, voter, CLI, Kafka consumers."""
