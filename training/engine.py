"""Shared training machinery: one epoch of optimisation, checkpoints, seeding and DDP set-up.

The loop follows the torchvision references: ``train_one_epoch`` runs the optimiser over a
loader with optional AMP (CUDA only), gradient clipping and a per-step scheduler, and stops on a
non-finite loss; checkpoints hold model, optimizer, scheduler, epoch and config and are read back
with ``torch.load(weights_only=True)``.

A loss function has the signature ``loss_fn(model, batch, device) -> (loss, parts)`` where
``loss`` is a scalar tensor and ``parts`` maps a name to a float for logging.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler
from tqdm import tqdm

from stream.errors import LiveTagError

LossFn = Callable[[nn.Module, Any, torch.device], tuple[torch.Tensor, Mapping[str, float]]]


class NonFiniteLossError(LiveTagError):
    """The loss became NaN or infinite; the step was skipped and training must stop."""


class CheckpointError(LiveTagError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) distributed run.

    Attributes:
        rank: Global rank, 0 in a single-process run.
        world_size: Number of processes in the run.
        local_rank: Rank on this node (selects the CUDA device).
        is_main: True on rank 0, the process that logs, saves and exports.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a DistributedDataParallel (or DataParallel) wrapper."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise LiveTagError(f"environment variable {name}={raw!r} is not an integer; fix the launcher") from exc


def init_distributed(backend: str | None = None) -> DistInfo:
    """Read the torchrun environment (at call time) and join the process group when needed.

    ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are set by ``torchrun`` for single- and multi-node
    runs; without them this is a single-process run and nothing is initialised.

    Args:
        backend: Process-group backend; default ``nccl`` when CUDA is available, else ``gloo``.

    Returns:
        The rank layout of this process.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size > 1 and not dist.is_initialized():
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if chosen == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=chosen, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, is_main=rank == 0)


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` into a device; DDP ranks get their local GPU.

    Raises:
        LiveTagError: CUDA was asked for but is not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LiveTagError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
        if info is not None and info.distributed and name == "cuda":
            return torch.device("cuda", info.local_rank)
    return torch.device(name)


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel in a distributed run, else return it unchanged."""
    if not info.distributed:
        return model
    param = next(model.parameters(), None)
    if param is not None and param.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[param.device.index])
    return nn.parallel.DistributedDataParallel(model)


def make_sampler(dataset: Dataset[Any], info: DistInfo, *, shuffle: bool, seed: int = 0) -> Sampler[int]:
    """A DistributedSampler in a distributed run, else a random or sequential sampler.

    Call ``set_epoch(epoch)`` on a DistributedSampler before each epoch (``set_sampler_epoch``).
    """
    if info.distributed:
        return DistributedSampler(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed
        )
    if shuffle:
        return RandomSampler(dataset)  # type: ignore[arg-type]
    return SequentialSampler(dataset)  # type: ignore[arg-type]


def set_sampler_epoch(sampler: Sampler[int] | None, epoch: int) -> None:
    """Reshuffle a DistributedSampler for ``epoch``; a no-op for other samplers."""
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def train_one_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Any],
    device: torch.device,
    epoch: int,
    *,
    scaler: torch.amp.GradScaler | None = None,
    scheduler: Any | None = None,
    grad_clip: float | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Run one pass of optimisation over ``loader``.

    Args:
        model: The module in train mode (set here), possibly DDP-wrapped.
        loss_fn: ``loss_fn(model, batch, device) -> (loss, parts)``; moves the batch itself.
        optimizer: The optimiser stepping ``model``'s parameters.
        loader: Iterable of batches (whatever ``loss_fn`` understands).
        device: Where the model lives. AMP (``torch.autocast``) is used when it is CUDA and a
            ``scaler`` is given.
        epoch: Epoch number, for the progress bar.
        scaler: A ``torch.amp.GradScaler`` for mixed precision on CUDA.
        scheduler: Stepped once per optimisation step when given (per-iteration schedules).
        grad_clip: Max global gradient norm, when given.
        progress: Show a tqdm bar.

    Returns:
        The mean of ``loss`` (key ``"loss"``) and of every part over the epoch's steps.

    Raises:
        NonFiniteLossError: The loss was NaN or infinite; that step was skipped (no update).
    """
    model.train()
    use_amp = scaler is not None and device.type == "cuda"
    sums: dict[str, float] = {}
    steps = 0
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, leave=False, dynamic_ncols=True)
    for batch in bar:
        with torch.autocast(device_type=device.type, enabled=use_amp):
            loss, parts = loss_fn(model, batch, device)
        value = float(loss.detach())
        if not math.isfinite(value):
            optimizer.zero_grad(set_to_none=True)
            bar.close()
            detail = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
            raise NonFiniteLossError(
                f"non-finite loss {value} at epoch {epoch} step {steps} ({detail}); "
                "lower --lr or check the data, then --resume from the last checkpoint"
            )
        optimizer.zero_grad(set_to_none=True)
        if use_amp:
            assert scaler is not None
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
        sums["loss"] = sums.get("loss", 0.0) + value
        for name, part in parts.items():
            sums[name] = sums.get(name, 0.0) + float(part)
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    return {name: total / max(steps, 1) for name, total in sums.items()}


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None,
    epoch: int,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Write model, optimizer, scheduler, epoch, config and metrics to ``path`` atomically.

    ``epoch`` is the epoch just finished; ``load_checkpoint`` returns ``epoch + 1``. The file
    holds only tensors and plain Python values so it loads with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "config": dict(config),
        "metrics": {k: v for k, v in metrics.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint written by ``save_checkpoint``.

    Args:
        path: The checkpoint file.
        model: Module (bare or DDP-wrapped) receiving the weights.
        optimizer: Restored when given and the checkpoint holds its state.
        scheduler: Restored when given and the checkpoint holds its state.

    Returns:
        ``(next_epoch, config)``: the epoch to continue from and the saved config.

    Raises:
        CheckpointError: The file is missing, unreadable, or its weights do not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass an existing file to --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors have many types
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path} is not a LiveTag checkpoint (no model/epoch entries)")
    try:
        unwrap(model).load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {first}") from exc
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]) + 1, dict(state.get("config") or {})


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The config stored in a checkpoint, without building a model (to rebuild one from it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass an existing file to --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    return dict(state.get("config") or {}) if isinstance(state, dict) else {}
