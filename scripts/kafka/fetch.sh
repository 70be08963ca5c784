#!/usr/bin/env bash
# Fetch the pinned Apache Kafka broker jars (scripts/kafka/pom.xml) from Maven Central into
# ${LIVETAG_KAFKA_HOME:-~/.cache/livetag/kafka}/libs. Maven runs with -C (strict checksums): a jar whose
# SHA-1 differs from the published one fails the fetch. Later runs find the cache and do nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m consumers.cli dev kafka --fetch-only "$@"
