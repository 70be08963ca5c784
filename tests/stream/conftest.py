"""Shared fixtures for the stream tests: the real test videos and clips made with the encoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stream_media import DATA, moving_frames

from stream.encode import write_video


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_clip(codec="h264", suffix=".mp4", frames=30, fps=10, gop=10)`` -> cached file."""
    cache: dict[tuple[object, ...], Path] = {}
    root = tmp_path_factory.mktemp("clips")

    def make(codec: str = "h264", suffix: str = ".mp4", frames: int = 30, fps: float = 10.0, gop: int = 10) -> Path:
        key = (codec, suffix, frames, fps, gop)
        if key not in cache:
            path = root / f"{codec}-{frames}f-{fps:g}fps-gop{gop}{suffix}"
            write_video(path, moving_frames(frames), fps=fps, codec=codec, gop=gop)
            cache[key] = path
        return cache[key]

    return make
