"""The shared training loop: real optimisation, checkpoints and resume, the non-finite guard."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from training.engine import (
    CheckpointError,
    DistInfo,
    NonFiniteLossError,
    init_distributed,
    load_checkpoint,
    make_sampler,
    save_checkpoint,
    seed_everything,
    train_one_epoch,
    wrap_ddp,
)
from training.plots import plot_curves


def _regression_data(n: int = 128) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=gen)
    true_w = torch.randn(8, 1, generator=gen)
    return TensorDataset(x, x @ true_w + 0.5)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device):
    x, y = (t.to(device) for t in batch)
    loss = nn.functional.mse_loss(model(x), y)
    return loss, {"mse": float(loss.detach())}


def _setup(lr: float = 0.01):
    seed_everything(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    loader = DataLoader(_regression_data(), batch_size=16, shuffle=True)
    return model, optimizer, scheduler, loader


def test_loss_falls_over_real_epochs() -> None:
    model, optimizer, scheduler, loader = _setup()
    device = torch.device("cpu")
    history = [train_one_epoch(model, _mse, optimizer, loader, device, e, progress=False) for e in range(6)]
    assert set(history[0]) == {"loss", "mse"}
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    assert math.isclose(history[-1]["loss"], history[-1]["mse"], rel_tol=1e-6)


def test_scheduler_steps_per_iteration_and_grad_clip() -> None:
    model, optimizer, _, loader = _setup()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    train_one_epoch(model, _mse, optimizer, loader, torch.device("cpu"), 0, scheduler=scheduler,
                    grad_clip=0.1, progress=False)
    assert scheduler.last_epoch == len(loader)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / (1 + len(loader)))


def test_resume_restores_epoch_weights_optimizer_and_scheduler(tmp_path: Path) -> None:
    model, optimizer, scheduler, loader = _setup()
    device = torch.device("cpu")
    for epoch in range(3):
        train_one_epoch(model, _mse, optimizer, loader, device, epoch, progress=False)
        scheduler.step()
    ckpt = tmp_path / "runs" / "last.pt"
    save_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, epoch=2,
                    config={"lr": 0.01, "name": "toy"}, metrics={"loss": 0.1})

    fresh, fresh_opt, fresh_sched, _ = _setup(lr=0.5)
    next_epoch, config = load_checkpoint(ckpt, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    assert next_epoch == 3
    assert config == {"lr": 0.01, "name": "toy"}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert fresh_sched.last_epoch == scheduler.last_epoch == 3
    moment_a = optimizer.state_dict()["state"][0]["momentum_buffer"]
    moment_b = fresh_opt.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(moment_a, moment_b)

    # Continuing from the checkpoint gives the same next epoch as continuing the original run.
    seed_everything(7)
    ref = train_one_epoch(model, _mse, optimizer, loader, device, 3, progress=False)
    seed_everything(7)
    got = train_one_epoch(fresh, _mse, fresh_opt, loader, device, 3, progress=False)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)


def test_checkpoint_errors_are_one_line(tmp_path: Path) -> None:
    model, *_ = _setup()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt", model=model)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(bad, model=model)
    save_checkpoint(tmp_path / "ok.pt", model=model, optimizer=None, scheduler=None, epoch=0, config={}, metrics={})
    other = nn.Linear(3, 3)
    with pytest.raises(CheckpointError, match="does not fit") as info:
        load_checkpoint(tmp_path / "ok.pt", model=other)
    assert "\n" not in str(info.value)


def test_non_finite_loss_stops_without_updating() -> None:
    model, optimizer, _, loader = _setup()
    before = [p.detach().clone() for p in model.parameters()]

    def exploding(model: nn.Module, batch, device):
        loss, parts = _mse(model, batch, device)
        return loss * float("nan"), parts

    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at epoch 4 step 0"):
        train_one_epoch(model, exploding, optimizer, loader, torch.device("cpu"), 4, progress=False)
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in model.parameters())


def test_single_process_distributed_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed()
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, is_main=True)
    model = nn.Linear(2, 2)
    assert wrap_ddp(model, info) is model
    data = _regression_data(10)
    assert sorted(make_sampler(data, info, shuffle=True)) == list(range(10))
    split = DistInfo(rank=1, world_size=2, local_rank=1, is_main=False)
    assert list(make_sampler(data, split, shuffle=False)) == [1, 3, 5, 7, 9]


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    history = [{"epoch": e, "train/loss": 1.0 / (e + 1), "val/loss": 1.2 / (e + 1), "map50": 0.1 * e}
               for e in range(4)]
    out = tmp_path / "plots" / "curves.png"
    plot_curves(history, out, "toy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
