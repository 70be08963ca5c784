"""Fixtures for the engines tests: tiny packages exported once per session from random-init modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"detector": folder, "embedder": folder} of tiny exported packages (torch needed to export)."""
    from engines_tiny_models import export_tiny_package

    root = tmp_path_factory.mktemp("tiny_packages")
    return {role: export_tiny_package(root / role, role) for role in ("detector", "embedder")}


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, fresh per test."""
    return np.random.default_rng(1234)
