"""Training recipes declared once: options from the dataclass fields, back to a validated recipe."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pytest

from stream.errors import LiveTagError
from training.commands import train_detector, train_embedder
from training.commands.recipe import recipe_from_args, warmup_cosine


@pytest.mark.parametrize("command", [train_detector, train_embedder], ids=["detector", "embedder"])
def test_every_field_is_an_option_with_its_default(command: object, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    command.configure(parser)  # type: ignore[attr-defined]
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "run")])
    settings = command.settings_from_args(args)  # type: ignore[attr-defined]
    defaults = type(settings)(data=tmp_path, out=tmp_path / "run")
    assert settings == defaults  # no field lost or defaulted differently on the way through argparse
    flags = {a for action in parser._actions for a in action.option_strings}
    for f in dataclasses.fields(settings):
        name = f.name.replace("_", "-")
        assert f"--{name}" in flags or f"--no-{name}" in flags, f.name
        assert f.metadata.get("help"), f"{f.name} has no help"


def test_options_of_every_kind_parse(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    train_embedder.configure(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--margins", "0.2,0.4",
                              "--no-amp", "--stop-after", "3", "--resume", str(tmp_path / "last.pt"),
                              "--arcface-scale", "16"])
    settings = recipe_from_args(train_embedder.EmbedderTrainSettings, args)
    assert settings.margins == (0.2, 0.4) and settings.amp is False and settings.stop_after == 3
    assert settings.resume == tmp_path / "last.pt" and settings.arcface_scale == 16.0
    with pytest.raises(SystemExit):  # --data is required
        parser.parse_args(["--out", "o"])
    bad = parser.parse_args(["--data", str(tmp_path), "--out", "o", "--margins", ""])
    with pytest.raises(LiveTagError, match="--margins needs at least one value"):
        recipe_from_args(train_embedder.EmbedderTrainSettings, bad)


@pytest.mark.parametrize(("total", "warmup", "floor"), [(1000, 100, 0.05), (480, 30, 0.02), (50, 0, 0.05)])
def test_the_one_schedule_warms_up_then_decays_to_its_floor(total: int, warmup: int, floor: float) -> None:
    factor = warmup_cosine(total, warmup, floor)
    if warmup:
        assert factor(0) == pytest.approx(1 / warmup) and factor(warmup - 1) == pytest.approx(1.0)
    assert factor(warmup) == pytest.approx(1.0)
    middle = warmup + (total - warmup) // 2
    assert factor(middle) == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-2)
    assert factor(total) == pytest.approx(floor) and factor(10 * total) == pytest.approx(floor)
    values = [factor(s) for s in range(warmup, total)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # never rises after warm-up
