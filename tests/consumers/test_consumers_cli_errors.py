"""Bad input to demo / replay / gallery build / eval: one line on stderr, exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from consumers_media import export_tiny_models, make_shop_images, make_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    packages = export_tiny_models(root / "models")
    video = make_video(root / "ok.mp4", ["red"], seconds_each=1.0)
    truncated = root / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    not_video = root / "notes.mp4"
    not_video.write_text("hello, I am text\n")
    make_shop_images(root / "shop", {"A": "red"}, per_item=1)
    (root / "empty_shop").mkdir()
    broken = root / "broken_model"
    broken.mkdir()
    (broken / "spec.json").write_text("{ not json")
    (broken / "model.onnx").write_bytes(b"\x00")
    return {"root": root, "video": video, "truncated": truncated, "not_video": not_video,
            "detector": packages["detector"], "embedder": packages["embedder"], "broken": broken}


def livetag(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "engines")])}
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *map(str, args), "--log-level", "ERROR"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )


def models(kit: dict[str, Path]) -> list[str | Path]:
    return ["--detector", kit["detector"], "--embedder", kit["embedder"]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("livetag: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def gallery(kit: dict[str, Path]) -> Path:
    out = kit["root"] / "gallery"
    result = livetag("gallery", "build", "--images", kit["root"] / "shop", "--out", out, *models(kit))
    assert result.returncode == 0, result.stderr
    assert "1 images of 1 items" in result.stdout
    return out


def test_replay_missing_file(kit: dict[str, Path], gallery: Path) -> None:
    result = livetag("replay", kit["root"] / "nope.mp4", "--gallery", gallery, "--out", kit["root"] / "m.jsonl")
    assert_one_line_error(result, "nope.mp4 does not exist")


def test_replay_not_a_video(kit: dict[str, Path], gallery: Path) -> None:
    result = livetag("replay", kit["not_video"], "--gallery", gallery, "--out", kit["root"] / "m.jsonl", *models(kit))
    assert_one_line_error(result, "notes.mp4")


def test_replay_truncated_video(kit: dict[str, Path], gallery: Path) -> None:
    result = livetag("replay", kit["truncated"], "--gallery", gallery, "--out", kit["root"] / "m.jsonl", *models(kit))
    assert_one_line_error(result, "truncated.mp4")


def test_replay_missing_gallery(kit: dict[str, Path]) -> None:
    result = livetag("replay", kit["video"], "--gallery", kit["root"] / "no_gallery", "--out", kit["root"] / "m.jsonl")
    assert_one_line_error(result, "no_gallery", "livetag gallery build")


def test_replay_catalog_not_in_gallery(kit: dict[str, Path], gallery: Path) -> None:
    result = livetag("replay", kit["video"], "--gallery", gallery, "--catalog", "X,Y", "--out", kit["root"] / "m.jsonl")
    assert_one_line_error(result, "--catalog")


def test_gallery_build_empty_folder(kit: dict[str, Path]) -> None:
    result = livetag("gallery", "build", "--images", kit["root"] / "empty_shop", "--out", kit["root"] / "g2")
    assert_one_line_error(result, "no images")


def test_gallery_build_wrong_model_package(kit: dict[str, Path]) -> None:
    swapped: list[str | Path] = ["--detector", kit["embedder"], "--embedder", kit["embedder"]]
    result = livetag("gallery", "build", "--images", kit["root"] / "shop", "--out", kit["root"] / "g3", *swapped)
    assert_one_line_error(result, "role is 'embedder' but a detector is needed")
    broken: list[str | Path] = ["--detector", kit["broken"], "--embedder", kit["embedder"]]
    result = livetag("gallery", "build", "--images", kit["root"] / "shop", "--out", kit["root"] / "g4", *broken)
    assert_one_line_error(result, "spec.json")


def test_eval_not_a_dataset(kit: dict[str, Path]) -> None:
    result = livetag("eval", "tianchi", "--data", kit["root"] / "shop", "--out", kit["root"] / "r.json")
    assert_one_line_error(result, "lacks image/, video/")


def test_demo_missing_sample(kit: dict[str, Path]) -> None:
    result = livetag("demo", "--sample", kit["root"] / "no_sample")
    assert_one_line_error(result, "sample folder")


def test_replay_writes_events_on_good_input(kit: dict[str, Path], gallery: Path) -> None:
    out = kit["root"] / "good.jsonl"
    result = livetag("replay", kit["video"], "--gallery", gallery, "--out", out, *models(kit))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert out.is_file() and "replay: 2 frames" in result.stdout


def test_demo_runs_on_a_sample(kit: dict[str, Path]) -> None:
    sample = kit["root"] / "sample"
    make_shop_images(sample / "image", {"A": "red", "B": "green"})
    (sample / "video").mkdir()
    make_video(sample / "video" / "live.mp4", ["red", "green"])
    result = livetag("demo", "--sample", sample, "--speed", "max", "--sampling", "keyframes", "--min-similarity", "-1", "--sold-threshold", "0",
                     *models(kit))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("demo: gallery: 4 shop images of 2 products")
    assert lines[-1].startswith("demo: 8 frames")
    for line in lines[2:-1]:  # one line per match event: time, stream, event, item, score, share
        fields = line.split()
        assert fields[1] == "live" and fields[2] in ("started", "updated", "ended") and fields[3] in ("A", "B")


@pytest.mark.parametrize("group", ["gallery", "eval", "dev", "topics", "data", "train"])
def test_every_command_group_has_help(group: str) -> None:
    helped = livetag(group, "--help")
    assert helped.returncode == 0 and f"usage: livetag {group} SUBCOMMAND" in helped.stdout
    missing = livetag(group)
    assert missing.returncode == 2 and f"livetag {group} SUBCOMMAND" in missing.stderr


def test_version() -> None:
    shown = livetag("--version")
    assert shown.returncode == 0 and shown.stdout.startswith("livetag ") and shown.stdout.split()[1][0].isdigit()
