"""Every ``LIVETAG_*`` variable the deployment sets (Dockerfile, k8s) names a real setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.root import ENV_PREFIX

REPO = Path(__file__).resolve().parents[2]
#: Variables of the scripts and the tests, not settings.
NOT_SETTINGS = {"LIVETAG_KAFKA_HOME"}


def _setting_variables() -> set[str]:
    names = set()
    for section in dataclasses.fields(Settings):
        for field in dataclasses.fields(getattr(Settings(), section.name)):
            names.add(f"{ENV_PREFIX}{section.name}_{field.name}".upper())
    return names


def test_deployment_variables_are_settings() -> None:
    files = [REPO / "Dockerfile", *sorted((REPO / "k8s").rglob("*.yaml")), *sorted((REPO / "k8s").rglob("*.env"))]
    used = {(name, path.relative_to(REPO).as_posix())
            for path in files for name in re.findall(r"\bLIVETAG_[A-Z0-9_]+", path.read_text(encoding="utf-8"))}
    assert len(used) > 10
    known = _setting_variables()
    unknown = sorted((name, where) for name, where in used if name not in known and name not in NOT_SETTINGS)
    assert unknown == []
