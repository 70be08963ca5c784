"""Training recipes declared once: a frozen dataclass whose fields carry their help, turned into
command-line options (:func:`add_recipe_arguments`) and back (:func:`recipe_from_args`), and the
learning-rate schedule both trainers use (:func:`warmup_cosine`).

A field ``batch_size: int = field(default=32, metadata={"help": "per process"})`` becomes
``--batch-size`` (type and default from the field); a ``bool`` that defaults to True becomes
``--no-<name>``, one that defaults to False ``--<name>``; a field without a default is a required
option; a ``tuple[float, ...]`` is given comma-separated.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stream.errors import LiveTagError

Recipe = TypeVar("Recipe")


def option(default: Any, help: str) -> Any:  # noqa: A002 - the word argparse uses
    """A recipe field with its help text (``dataclasses.field`` with ``metadata={"help": help}``)."""
    return dataclasses.field(default=default, metadata={"help": help})


def required(help: str) -> Any:  # noqa: A002
    """A recipe field without a default: a required option."""
    return dataclasses.field(metadata={"help": help})


def _base(hint: Any) -> Any:
    """``X`` of ``X | None``; the hint itself otherwise."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return hint


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_recipe_arguments(parser: argparse.ArgumentParser, recipe: type) -> None:
    """Declare one option per field of the dataclass ``recipe`` (see the module docstring)."""
    hints = typing.get_type_hints(recipe)
    for f in dataclasses.fields(recipe):
        help_text = str(f.metadata.get("help", ""))
        base = _base(hints[f.name])
        has_default = f.default is not dataclasses.MISSING
        if base is bool:
            negated = bool(f.default)
            parser.add_argument(_flag(("no_" if negated else "") + f.name), dest=f.name,
                                action="store_false" if negated else "store_true", help=help_text)
        elif typing.get_origin(base) is tuple:
            default = ",".join(f"{v:g}" for v in typing.cast(tuple, f.default)) if has_default else None
            parser.add_argument(_flag(f.name), dest=f.name, default=default, required=not has_default,
                                help=f"{help_text} (comma-separated; default {default})")
        else:
            kind = Path if base is Path else base
            shown = f" (default {f.default})" if has_default and f.default is not None else ""
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, required=not has_default,
                                default=f.default if has_default else None, help=help_text + shown)


def recipe_from_args(recipe: type[Recipe], args: argparse.Namespace) -> Recipe:
    """The validated recipe of parsed options (comma-separated tuples parsed here).

    Raises:
        LiveTagError: A tuple option does not parse, or the recipe's own checks fail.
    """
    assert dataclasses.is_dataclass(recipe)
    hints = typing.get_type_hints(recipe)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(recipe):
        value = getattr(args, f.name)
        if typing.get_origin(_base(hints[f.name])) is tuple and isinstance(value, str):
            try:
                value = tuple(float(x) for x in value.split(",") if x.strip())
            except ValueError as exc:
                raise LiveTagError(f"{_flag(f.name)} must be comma-separated numbers, got {value!r}") from exc
            if not value:
                raise LiveTagError(f"{_flag(f.name)} needs at least one value")
        values[f.name] = value
    return typing.cast(Recipe, recipe(**values))


def warmup_cosine(total_steps: int, warmup_steps: int, floor: float) -> Callable[[int], float]:
    """The learning-rate factor of step ``n``: linear warm-up over ``warmup_steps``, then cosine decay
    from 1 to ``floor`` at ``total_steps`` (for ``torch.optim.lr_scheduler.LambdaLR``)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
