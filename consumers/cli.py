"""The ``livetag`` command: a table of subcommands, each in its own module, imported on use.

Only the module of the command being run is imported, so ``livetag demo`` never loads
torch and ``livetag --help`` loads nothing heavy. Each command module exposes
``configure(parser)`` to declare its arguments and ``run(args, settings) -> int``, and may set
``SETTINGS_DEFAULTS`` (``{"section__field": value}``, its own defaults). The settings of every
command are loaded here, once, by :func:`consumers.settings.options.load_settings`
(CLI > ``LIVETAG_*`` environment > command defaults > defaults); logging is set up from them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from stream.errors import LiveTagError

# (words) -> (module, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("demo",): ("consumers.commands.demo", "Run the embedded pipeline on the shipped sample stream."),
    ("replay",): ("consumers.commands.replay", "Replay recorded videos through the pipeline."),
    ("gallery", "build"): ("consumers.commands.gallery_build", "Embed shop images into a gallery index."),
    ("gallery", "publish"): ("consumers.commands.gallery_publish", "Publish a gallery to the Kafka topic."),
    ("eval", "tianchi"): ("training.commands.eval_tianchi", "Evaluate on a data set in the Tianchi layout."),
    ("dev", "kafka"): ("consumers.commands.dev_kafka", "Run a local single-node KRaft Kafka broker."),
    ("topics", "create"): ("consumers.commands.topics_create", "Create the LiveTag Kafka topics."),
    ("ingest",): ("consumers.commands.ingest", "Ingest worker: streams topic -> frames topic."),
    ("infer",): ("consumers.commands.infer", "Inference consumer: frames topic -> matches topic."),
    ("data", "synth"): ("training.synth.command", "Generate a synthetic live-shop data set."),
    ("train", "detector"): ("training.commands.train_detector", "Train the detector."),
    ("train", "embedder"): ("training.commands.train_embedder", "Train the embedder."),
    ("train", "fuse-embedders"): ("training.commands.fuse_embedders",
                                  "Fuse a trained embedder with a frozen ImageNet backbone into one package."),
    ("model", "repack"): ("training.commands.repack_package",
                          "Re-export a model package so its graph takes uint8 pixels (or float input)."),
}


def _usage() -> str:
    lines = ["usage: livetag COMMAND [options]", "", "commands:"]
    for words, (_, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<18} {text}")
    lines.append("")
    lines.append("Run 'livetag COMMAND --help' for the options of one command.")
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    lines = [f"usage: livetag {group} SUBCOMMAND [options]", "", "subcommands:"]
    for words, (_, text) in COMMANDS.items():
        if words[0] == group and len(words) > 1:
            lines.append(f"  {' '.join(words):<18} {text}")
    lines.append("")
    lines.append(f"Run 'livetag {group} SUBCOMMAND --help' for its options.")
    return "\n".join(lines)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("livetag")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _find(argv: Sequence[str]) -> tuple[tuple[str, ...], str] | None:
    for words, (module, _) in sorted(COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(argv[: len(words)]) == words:
            return words, module
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``livetag`` console script; returns the exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or args_in[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args_in else 2
    if args_in[0] == "--version":
        print(f"livetag {_version()}")
        return 0
    found = _find(args_in)
    groups = {words[0] for words in COMMANDS if len(words) > 1}
    if found is None and args_in[0] in groups:  # a group without one of its subcommands
        helped = len(args_in) > 1 and args_in[1] in ("-h", "--help")
        print(_group_usage(args_in[0]), file=sys.stdout if helped else sys.stderr)
        return 0 if helped else 2
    if found is None:
        print(f"livetag: error: unknown command {' '.join(args_in[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, module_name = found
    module = importlib.import_module(module_name)
    from consumers.settings.options import add_setting_options, load_settings

    parser = argparse.ArgumentParser(prog="livetag " + " ".join(words), description=COMMANDS[words][1])
    defaults = getattr(module, "SETTINGS_DEFAULTS", {})
    add_setting_options(parser, "observability", defaults=defaults)
    module.configure(parser)
    args = parser.parse_args(args_in[len(words) :])
    from consumers.observability.logging_setup import setup_logging

    try:
        settings = load_settings(args, os.environ, defaults)
    except LiveTagError as exc:
        print(f"livetag: error: {exc}", file=sys.stderr)
        return 2
    redact = setup_logging(settings.observability.log_format, settings.observability.log_level, environ=os.environ)
    try:
        return int(module.run(args, settings) or 0)
    except LiveTagError as exc:
        print(f"livetag: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
