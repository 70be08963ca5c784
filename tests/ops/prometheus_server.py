"""A throw-away Prometheus server (Debian's ``prometheus``) that scrapes given targets.

Usage::

    with PrometheusServer.start(tmp_path, targets=["127.0.0.1:9108"], scrape_interval_s=1) as prom:
        prom.wait_for('livetag_frames_in_total', lambda v: v >= 10)
        prom.query("livetag_end_to_end_latency_seconds_count")
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from local_ports import free_port

PROMETHEUS = Path(shutil.which("prometheus") or "/usr/bin/prometheus")

CONFIG = """
global:
  scrape_interval: {interval}s
  scrape_timeout: {timeout}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: livetag-inference
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
"""



class PrometheusServer:
    """One Prometheus process with a temporary config and TSDB under ``root``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root

    @staticmethod
    def available() -> bool:
        """True when the prometheus binary is installed."""
        return PROMETHEUS.exists()

    @classmethod
    def start(
        cls, root: Path, targets: Sequence[str], scrape_interval_s: int = 1, timeout_s: float = 30.0
    ) -> PrometheusServer:
        """Write a config under ``root``, start Prometheus, wait until it answers ``/-/ready``."""
        root.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        config.write_text(CONFIG.format(
            interval=scrape_interval_s,
            timeout=scrape_interval_s,
            targets=", ".join(f"'{t}'" for t in targets),
        ))
        last = ""
        for _ in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            process = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            server = cls(process, port, root)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(OSError, urllib.error.URLError), \
                        urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return server
                time.sleep(0.1)
            server.stop()
            last = (process.stderr.read().decode(errors="replace") if process.stderr else "")[-2000:]
        raise RuntimeError(f"prometheus did not become ready: {last}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The ``result`` list of an instant query through ``/api/v1/query``."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            doc = json.load(response)
        if doc.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {doc}")
        return list(doc["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The value of a query returning one series, None when it returns none."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) != 1:
            raise RuntimeError(f"query {promql!r} returned {len(result)} series")
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, accept: Callable[[float], bool], timeout_s: float = 20.0) -> float:
        """Poll ``promql`` until its single value satisfies ``accept``; returns that value."""
        deadline = time.monotonic() + timeout_s
        value: float | None = None
        while time.monotonic() < deadline:
            value = self.scalar(promql)
            if value is not None and accept(value):
                return value
            time.sleep(0.2)
        raise AssertionError(f"{promql} = {value} did not reach the expected value within {timeout_s}s")

    def targets_up(self) -> list[dict[str, Any]]:
        """The active targets as Prometheus reports them (``health``, ``lastError``...)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            return list(json.load(response)["data"]["activeTargets"])

    def stop(self) -> None:
        """Terminate and reap the process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
