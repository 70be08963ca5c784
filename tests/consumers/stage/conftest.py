"""The stage tests' shared world, built once per session (read-only: tests build their own stages on it)."""

from __future__ import annotations

from typing import Any

import pytest
from stage_world import build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_world(tmp_path_factory.mktemp("pipeline"))
