#!/usr/bin/env bash
# Install everything the test suite needs, start nothing by hand (tests start their own services),
# then lint, type-check and run the tests. This is README command 2 and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# System services the tests run for real: nginx + RTMP module (live ingest), kcat (an independent Kafka
# client), Prometheus (scrape test), Java 17 + Maven (the Kafka broker's jars come from Maven Central).
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    nginx libnginx-mod-rtmp kcat prometheus openjdk-17-jre-headless maven >/dev/null
fi

# Exact versions the suite is green with (requirements/lock.txt; README says how to refresh it).
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -c requirements/lock.txt -e ".[train,dev]"
# kustomize, kubeconform and the Kubernetes + KEDA CRD schemas, pinned, into .tools/ (k8s tests).
bash scripts/install_k8s_tools.sh

ruff check .
mypy
# A shuffled but fixed test order (pass --randomly-seed=N to try another one).
python3 -m pytest -q -ra --randomly-seed=20261203 "$@"
