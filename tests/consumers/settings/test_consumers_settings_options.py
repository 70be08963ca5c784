"""The one settings loader: CLI > environment > command defaults > defaults, for every command."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import re
from pathlib import Path

import pytest

from consumers import cli
from consumers.observability.logging_setup import reset_logging
from consumers.settings import Settings, SettingsError
from consumers.settings.options import GROUPS, add_setting_options, cli_overrides, load_settings

REPO = Path(__file__).resolve().parents[3]


def _parse(argv: list[str], *groups: str, defaults: dict[str, object] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_setting_options(parser, *groups, defaults=defaults)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "env", "defaults", "expected"),
    [
        ([], {}, {}, 16),  # the settings' default
        ([], {}, {"batch__max_batch": 8}, 8),  # the command's default beats it
        ([], {"LIVETAG_BATCH_MAX_BATCH": "12"}, {"batch__max_batch": 8}, 12),  # the environment beats both
        (["--max-batch", "4"], {"LIVETAG_BATCH_MAX_BATCH": "12"}, {"batch__max_batch": 8}, 4),  # the CLI beats all
    ],
)
def test_precedence_cli_over_environment_over_command_defaults(
    argv: list[str], env: dict[str, str], defaults: dict[str, object], expected: int
) -> None:
    settings = load_settings(_parse(argv, "batch", defaults=defaults), env, defaults)
    assert settings.batch.max_batch == expected


def test_options_of_every_kind_set_their_setting() -> None:
    args = _parse(["--bootstrap", "k1:9092, k2:9093", "--no-text", "--flip-tta", "--allow-files", "/a",
                   "--allow-files", "/b", "--vote-weight", "similarity", "--sampling", "fps:2", "--group", "g1",
                   "--detection-threshold", "0.05", "--intra-op-threads", "1"],
                  "kafka", "pipeline", "models", "ingest", "replay")
    settings = load_settings(args, {})
    assert settings.kafka.bootstrap_servers == ("k1:9092", "k2:9093")
    assert settings.text.enabled is False and settings.models.flip_tta is True
    assert settings.ingest.allow_files == ("/a", "/b") and settings.ingest.group_id == "g1"
    assert settings.voter.vote_weight == "similarity" and settings.replay.sampling_spec.fps == 2
    assert settings.pipeline.detection_threshold == 0.05 and settings.models.intra_op_threads == 1
    assert cli_overrides(_parse([], "kafka", "pipeline")) == {}  # options not given change nothing


def test_a_bad_option_or_variable_is_a_settings_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="replay.sampling"):
        load_settings(_parse(["--sampling", "fps:0"], "replay"), {})
    with pytest.raises(SettingsError, match="replay.speed"):
        load_settings(None, {"LIVETAG_REPLAY_SPEED": "fast"})


def test_every_option_names_a_real_setting_and_flags_are_unique_per_group() -> None:
    settings = Settings()
    for name, options in GROUPS.items():
        flags = [o.flag for o in options]
        assert len(flags) == len(set(flags)), name
        for option in options:
            section, field = option.setting.split(".")
            assert hasattr(getattr(settings, section), field), option.setting


def test_every_setting_is_read_outside_the_settings_package() -> None:
    """A field nobody reads is a promise the code does not keep: each must appear as ``.field``.

    ``topics`` and ``kafka`` are read whole by their own methods (``name``/``specs`` and
    ``client_kwargs``, tested in test_consumers_settings), so only those methods' use is checked."""
    sources = [p for folder in ("consumers", "engines", "stream") for p in (REPO / folder).rglob("*.py")
               if "settings" not in p.relative_to(REPO).parts]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    assert re.search(r"\.topics\.(name|specs)\(", text) and re.search(r"\.client_kwargs\(", text)
    unread = []
    for section in dataclasses.fields(Settings):
        if section.name in ("topics", "kafka"):
            continue
        for field in dataclasses.fields(getattr(Settings(), section.name)):
            if not re.search(rf"\.{field.name}\b", text):
                unread.append(f"{section.name}.{field.name}")
    assert unread == []


def test_every_command_takes_its_settings_from_the_one_loader(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The environment reaches every command, logging included (json log lines from the variable)."""
    seen: dict[str, Settings] = {}

    class Probe:
        SETTINGS_DEFAULTS = {"batch__max_batch": 8}

        @staticmethod
        def configure(parser: argparse.ArgumentParser) -> None:
            add_setting_options(parser, "batch", "pipeline", defaults=Probe.SETTINGS_DEFAULTS)

        @staticmethod
        def run(args: argparse.Namespace, settings: Settings) -> int:
            seen["settings"] = settings
            logging.getLogger("livetag.probe").warning("probe ran")
            return 0

    monkeypatch.setitem(cli.COMMANDS, ("probe",), ("probe_module", "a probe"))
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: Probe if name == "probe_module" else real_import(name, *a))
    monkeypatch.setenv("LIVETAG_VOTER_MIN_VOTES", "7")
    monkeypatch.setenv("LIVETAG_OBSERVABILITY_LOG_FORMAT", "json")
    root = logging.getLogger()
    level = root.level
    try:
        assert cli.main(["probe", "--min-similarity", "0.4"]) == 0
    finally:  # the CLI's handler writes to this test's captured stderr: never leave it behind
        reset_logging()
        root.setLevel(level)
    settings = seen["settings"]
    assert settings.voter.min_votes == 7 and settings.voter.min_similarity == 0.4 and settings.batch.max_batch == 8
    assert '"message": "probe ran"' in capsys.readouterr().err

    monkeypatch.setenv("LIVETAG_VOTER_MIN_VOTES", "none")
    assert cli.main(["probe"]) == 2
    assert "LIVETAG_VOTER_MIN_VOTES" in capsys.readouterr().err


@pytest.mark.parametrize("words", sorted(cli.COMMANDS))
def test_every_command_module_runs_with_settings(words: tuple[str, ...]) -> None:
    module = importlib.import_module(cli.COMMANDS[words][0])
    params = list(__import__("inspect").signature(module.run).parameters)
    assert len(params) == 2, f"{' '.join(words)}: run(args, settings)"
