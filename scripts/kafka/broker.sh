#!/usr/bin/env bash
# Start a local single-node KRaft Kafka broker on 127.0.0.1 (free port) with Java 17; Ctrl-C stops it.
# Prints the bootstrap address and an `export LIVETAG_KAFKA_BOOTSTRAP_SERVERS=...` line.
#   scripts/kafka/broker.sh --create-topics [--work-dir DIR] [--heap-mb 512]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m consumers.cli dev kafka "$@"
