"""The ``livetag`` command: a table of subcommands, each in its own module, imported on use.

Only the module of the command being run is imported, so ``livetag demo`` never loads
torch and ``livetag --help`` loads nothing heavy. Each command module exposes
``configure(parser)`` to declare its arguments and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stream.errors import LiveTagError

# (words) -> (module, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("demo",): ("consumers.commands.demo", "Run the embedded pipeline on the shipped sample stream."),
    ("replay",): ("consumers.commands.replay", "Replay recorded videos through the pipeline."),
    ("gallery", "build"): ("consumers.commands.gallery_build", "Embed shop images into a gallery index."),
    ("gallery", "publish"): ("consumers.commands.gallery_publish", "Publish a gallery to the Kafka topic."),
    ("eval", "tianchi"): ("consumers.commands.eval_tianchi", "Evaluate on a data set in the Tianchi layout."),
    ("dev", "kafka"): ("consumers.commands.dev_kafka", "Run a local single-node KRaft Kafka broker."),
    ("topics", "create"): ("consumers.commands.topics_create", "Create the LiveTag Kafka topics."),
    ("ingest",): ("consumers.commands.ingest", "Ingest worker: streams topic -> frames topic."),
    ("infer",): ("consumers.commands.infer", "Inference consumer: frames topic -> matches topic."),
    ("data", "synth"): ("training.synth.command", "Generate a synthetic live-shop data set."),
    ("train", "detector"): ("training.commands.train_detector", "Train the detector."),
    ("train", "embedder"): ("training.commands.train_embedder", "Train the embedder."),
}


def _usage() -> str:
    lines = ["usage: livetag COMMAND [options]", "", "commands:"]
    for words, (_, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<18} {text}")
    lines.append("")
    lines.append("Run 'livetag COMMAND --help' for the options of one command.")
    return "\n".join(lines)


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
    found = _find(args_in)
    if found is None:
        print(f"livetag: error: unknown command {' '.join(args_in[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, module_name = found
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog="livetag " + " ".join(words), description=COMMANDS[words][1])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    module.configure(parser)
    args = parser.parse_args(args_in[len(words) :])
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except LiveTagError as exc:
        print(f"livetag: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
