"""The command-line options that override settings, and the one function that loads the settings.

Every option names the setting it sets (``--max-batch`` is ``batch.max_batch``), so one table serves
every command: a command declares the groups it takes with :func:`add_setting_options`, and
:func:`load_settings` applies, in this order (later wins):

1. the defaults of :class:`~consumers.settings.root.Settings`;
2. the command's own defaults (e.g. ``livetag demo`` samples ``fps:4`` at real-time speed);
3. ``LIVETAG_<SECTION>_<FIELD>`` environment variables;
4. the command-line options that were given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from consumers.settings.checks import SettingsError
from consumers.settings.root import Settings
from consumers.settings.sections import LOG_LEVELS, SOLD_SCALES, SPEEDS
from consumers.settings.text import OCR_MODES
from consumers.settings.voter import VOTE_WEIGHTS
from engines.loading import BACKENDS

#: argparse ``dest`` prefix of the options in this table (the rest is the setting's dotted name).
DEST_PREFIX = "setting:"


def _servers(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Option:
    """One command-line option that sets one setting.

    Attributes:
        flag: The option, e.g. ``--max-batch``.
        setting: The setting it sets, ``section.field``.
        help: What it does (the setting and its default are appended).
        type: Parses the option's text.
        choices: Allowed values, when fixed.
        const: For an option without a value: what giving it sets.
        repeat: The option may be given several times; the setting gets the tuple of values.
        metavar: Name of the value in the help.
    """

    flag: str
    setting: str
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    const: Any = None
    repeat: bool = False
    metavar: str | None = None


GROUPS: dict[str, tuple[Option, ...]] = {
    "models": (
        Option("--detector", "models.detector_dir", "detector package folder (model.onnx + spec.json)", metavar="DIR"),
        Option("--embedder", "models.embedder_dir", "embedder package folder (model.onnx + spec.json)", metavar="DIR"),
        Option("--backend", "models.backend", "inference runtime", choices=BACKENDS),
        Option("--detector-digest", "models.detector_digest",
               "refuse the detector package unless its digest (spec, ONNX, weights) is this one", metavar="SHA256"),
        Option("--embedder-digest", "models.embedder_digest",
               "refuse the embedder package unless its digest (spec, ONNX, weights) is this one", metavar="SHA256"),
        Option("--flip-tta", "models.flip_tta", "embed every crop and its mirror image and average them", const=True),
        Option("--person-model", "models.person_dir", "person-segmentation package folder (spec.json + model.tflite)",
               metavar="DIR"),
        Option("--gallery-views", "models.gallery_views",
               "views of each shop image averaged into its gallery vector: a comma list of box, flip, tight, wide",
               metavar="LIST"),
        Option("--intra-op-threads", "models.intra_op_threads",
               "ONNX Runtime threads per operator (0: one per physical core of the machine)", type=int, metavar="N"),
        Option("--opencv-threads", "models.opencv_threads",
               "OpenCV threads for the resizes before the models (default 1; 0: one per core)", type=int, metavar="N"),
    ),
    "batch": (
        Option("--max-batch", "batch.max_batch", "frames per model call", type=int),
        Option("--max-wait-ms", "batch.max_wait_ms", "longest wait for a batch to fill", type=float),
        Option("--model-workers", "batch.model_workers",
               "batches in the models at once, one thread each (onnxruntime; pair with --intra-op-threads 1)",
               type=int, metavar="N"),
    ),
    "pipeline": (
        Option("--min-similarity", "voter.min_similarity", "gallery hits below this do not vote", type=float),
        Option("--detection-threshold", "pipeline.detection_threshold", "least objectness to keep a box", type=float),
        Option("--sold-threshold", "pipeline.sold_threshold", "least sold-item probability to vote", type=float),
        Option("--sold-scale", "pipeline.sold_scale",
               "sold probabilities as they are (absolute) or over the frame's highest (frame)", choices=SOLD_SCALES),
        Option("--motion-window-s", "pipeline.motion_window_s",
               "compare each box with the frame this many stream seconds earlier; still boxes beside moving "
               "ones vote less (0: off)", type=float),
        Option("--no-presentation-prior", "pipeline.presentation_prior",
               "do not weigh boxes by their size and distance from the frame's centre line", const=False),
        Option("--person-cue", "pipeline.person_cue",
               "also weigh boxes by how much of them lies on a person (a person mask per frame)", const=True),
        Option("--vote-weight", "voter.vote_weight", "what a detection votes with", choices=VOTE_WEIGHTS),
        Option("--votes-per-frame", "voter.votes_per_frame", "only the frame's N strongest item votes count (0: all)",
               type=int),
        Option("--vote-interval-s", "voter.vote_interval_s",
               "stream seconds one frame's vote stands for (0: every frame counts once)", type=float),
        Option("--decode-workers", "pipeline.decode_workers", "threads that decode a batch's frames (one stream each)",
               type=int),
        Option("--skip-loop-filter", "pipeline.skip_loop_filter", "decode keyframes without deblocking (faster)",
               const=True),
        Option("--scale-in-decoder", "pipeline.scale_in_decoder",
               "scale frames to the detector's input while converting them from YUV (faster)", const=True),
        Option("--no-text", "text.enabled", "ignore titles, transcripts and on-screen text (votes are visual alone)",
               const=False),
        Option("--ocr", "text.ocr_mode", "read on-screen text with OCR", choices=OCR_MODES),
    ),
    "replay": (
        Option("--speed", "replay.speed", "replay at the stream's own pace or as fast as possible", choices=SPEEDS),
        Option("--sampling", "replay.sampling",
               "'keyframes' (demux only) or 'fps:N' (decode and take N frames a second)"),
    ),
    "kafka": (
        Option("--bootstrap", "kafka.bootstrap_servers", "brokers (SASL/SSL from LIVETAG_KAFKA_*, see docs/kafka.md)",
               type=_servers, metavar="HOST:PORT[,HOST:PORT]"),
    ),
    "topic-prefix": (
        Option("--topic-prefix", "topics.prefix", "prefix of every topic name", metavar="PREFIX"),
    ),
    "topic-layout": (
        Option("--partitions", "topics.partitions", "partitions of every topic", type=int),
        Option("--replication", "topics.replication", "replication factor", type=int),
    ),
    "ingest": (
        Option("--group", "ingest.group_id", "consumer group on the streams topic"),
        Option("--max-streams", "ingest.max_streams", "streams this worker runs at once", type=int),
        Option("--open-timeout", "ingest.open_timeout_s", "seconds to open a source", type=float),
        Option("--stall-timeout", "ingest.stall_timeout_s",
               "seconds without a packet before a live source is reopened", type=float),
        Option("--max-retries", "ingest.max_retries", "failed opens in a row before a stream goes to dlq", type=int),
        Option("--allow-files", "ingest.allow_files",
               "let streams records name local files under DIR (repeatable)", repeat=True, metavar="DIR"),
        Option("--allow-loopback", "ingest.allow_loopback",
               "let streams records name loopback / link-local hosts (a local ingest point, tests)", const=True),
    ),
    "infer": (
        Option("--group", "infer.group_id", "consumer group on the frames topic"),
        Option("--gallery-timeout", "infer.gallery_timeout_s", "seconds to read the gallery topic at start",
               type=float),
    ),
    "observability": (
        Option("--log-level", "observability.log_level", "log level", choices=LOG_LEVELS),
        Option("--log-format", "observability.log_format",
               "log lines as text or one JSON object per line (credentials are masked)", choices=("text", "json")),
    ),
}


def _setting(settings: Settings, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(settings, section), name)


def _shown(value: Any) -> str:
    """A default as the help shows it."""
    if value is None or value in ("", ()):
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _defaults(command_defaults: Mapping[str, Any] | None) -> Settings:
    try:
        return Settings().with_overrides(**(command_defaults or {}))
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad command default: {exc}") from exc


def add_setting_options(
    parser: argparse.ArgumentParser, *groups: str, defaults: Mapping[str, Any] | None = None
) -> None:
    """Declare the options of ``groups`` (keys of :data:`GROUPS`) on ``parser``.

    Args:
        parser: The command's parser.
        groups: Which option groups the command takes.
        defaults: The command's own defaults (``{"replay__speed": "realtime"}``), shown in the help;
            pass the same mapping to :func:`load_settings`.
    """
    shown = _defaults(defaults)
    for name in groups:
        group = parser.add_argument_group(name)
        for option in GROUPS[name]:
            text = f"{option.help} (setting {option.setting}; default {_shown(_setting(shown, option.setting))})"
            kwargs: dict[str, Any] = {"dest": DEST_PREFIX + option.setting, "default": None, "help": text}
            if option.const is not None:
                kwargs.update(action="store_const", const=option.const)
            else:
                metavar = option.metavar or (None if option.choices else option.setting.split(".")[1].upper())
                kwargs.update(type=option.type, choices=option.choices, metavar=metavar)
                if option.repeat:
                    kwargs["action"] = "append"
            group.add_argument(option.flag, **kwargs)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``{"section__field": value}`` for every option of the table that was given."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if dest.startswith(DEST_PREFIX) and value is not None:
            out[dest[len(DEST_PREFIX) :].replace(".", "__")] = tuple(value) if isinstance(value, list) else value
    return out


def load_settings(
    args: argparse.Namespace | None,
    environ: Mapping[str, str],
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """The validated settings of one command: CLI > environment > command defaults > defaults.

    Args:
        args: Parsed options (those of :func:`add_setting_options` are applied; None: none).
        environ: The environment (``LIVETAG_*`` variables are read).
        defaults: The command's own defaults, ``{"section__field": value}``.

    Raises:
        SettingsError: A value that does not parse or validate, named.
    """
    settings = Settings.from_env(environ, _defaults(defaults))
    overrides = cli_overrides(args) if args is not None else {}
    try:
        return settings.with_overrides(**overrides) if overrides else settings
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad option: {exc}") from exc

