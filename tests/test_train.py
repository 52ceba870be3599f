"""The shared training loop: schedule, exact resumption, NaN guard, checkpoints, batches, DDP."""
import math
import os
import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from samod.train import (OptimizerConfig, StepBatches, TrainConfig, Trainer, load_weights,
                         read_checkpoint_metadata)


class ToyStage:
    """Two modules, two alternating optimizers, randomness from the global RNG (dropout and input noise)."""

    def __init__(self, nan_steps=(), bad_gradient_steps=()):
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 8))
        self.head = nn.Linear(8, 1)
        self.nan_steps, self.bad_gradient_steps = set(nan_steps), set(bad_gradient_steps)

    def modules(self):
        return {"net": self.net, "head": self.head}

    def optimizers(self):
        schedule = dict(betas=(0.8, 0.99), weight_decay=1e-3, inv_gamma=10.0, power=0.5, warmup=0.5)
        return {"net": (self.net.parameters(), OptimizerConfig(lr=1e-2, **schedule)),
                "head": (self.head.parameters(), OptimizerConfig(lr=3e-2, **schedule))}

    def ema_modules(self):
        return ["net"]

    def training_step(self, batch, step):
        x, y = batch["x"], batch["y"]  # (B, 4), (B, 1)
        x = x + 0.1 * torch.randn_like(x)  # global RNG
        loss = ((self.head(self.net(x)) - y) ** 2).mean()
        if step in self.nan_steps:
            loss = loss * float("nan")
        if step in self.bad_gradient_steps:  # finite loss (0), infinite gradient: d sqrt(u)/du at u = 0
            w = self.net[0].weight if step % 2 == 0 else self.head.weight  # in the stepped optimizer
            loss = loss + (w - w.detach()).abs().sqrt().sum()
        return ("net" if step % 2 == 0 else "head"), loss, {"mse": loss.item()}


class ToyDataset(torch.utils.data.Dataset):
    """Items depend on (epoch, index), like SongDataset's random crops."""

    def __init__(self, n=10):
        self.n, self.epoch = n, 0

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        x = torch.randn(4, generator=g)
        return {"x": x, "y": x.sum(0, keepdim=True).tanh(), "index": i}


def make_stage(seed, **kwargs):
    torch.manual_seed(seed)
    return ToyStage(**kwargs)


def quiet(steps, **kwargs):
    return TrainConfig(steps=steps, progress=False, device="cpu", **kwargs)


# ----------------------------------------------------------------------------------------------------
# Schedule

def test_inverse_lr_formula():
    c = OptimizerConfig(lr=1.5e-4, inv_gamma=200_000, power=0.5, warmup=0.999)
    assert c.lr_at(0) == pytest.approx(1.5e-4 * (1 - 0.999))  # exponential warm-up starts at 1 - warmup
    k = 200_000  # at k = inv_gamma the decay is 2^-power (warm-up long finished)
    assert c.lr_at(k) == pytest.approx(1.5e-4 * (1 - 0.999 ** (k + 1)) * 2 ** -0.5)
    floor = OptimizerConfig(lr=1.0, inv_gamma=1.0, power=1.0, final_lr=0.1)
    assert floor.lr_at(100) == pytest.approx(0.1)  # max(final_lr, lr * decay)
    assert OptimizerConfig(lr=2e-3).lr_at(12345) == 2e-3  # defaults: constant
    with pytest.raises(ValueError, match="warmup"):
        OptimizerConfig(warmup=1.0)


def test_trainer_sets_scheduled_lr_per_optimizer():
    stage = make_stage(0)
    trainer = Trainer(stage, quiet(5), None)
    trainer.fit(StepBatches(ToyDataset(), 2))
    assert trainer.optimizer_steps == {"net": 3, "head": 2}  # alternating: steps 0, 2, 4 and 1, 3
    net_config = stage.optimizers()["net"][1]
    assert trainer.optimizers["net"].param_groups[0]["lr"] == net_config.lr_at(2)  # lr of its 3rd step
    assert trainer.optimizers["head"].param_groups[0]["lr"] == stage.optimizers()["head"][1].lr_at(1)


# ----------------------------------------------------------------------------------------------------
# Exact resumption

def state_of(trainer):
    tensors = {f"m.{n}.{k}": v.clone() for n, m in trainer.modules.items() for k, v in m.state_dict().items()}
    tensors |= {f"e.{n}.{k}": v.clone() for n, m in trainer.ema.items() for k, v in m.state_dict().items()}
    for name, opt in trainer.optimizers.items():
        for i, s in opt.state_dict()["state"].items():
            tensors |= {f"o.{name}.{i}.{k}": v.clone() for k, v in s.items()}
    return tensors


def test_killed_run_resumes_bit_identically(tmp_path):
    n = 12
    config = quiet(n, log_every=2, checkpoint_every=4)
    straight = Trainer(make_stage(0), config, tmp_path / "a")
    history = straight.fit(StepBatches(ToyDataset(10), batch_size=3, seed=5))  # 3 steps per epoch

    class Killed(Exception):
        pass

    def dies_at_step_7(step, batches=StepBatches(ToyDataset(10), batch_size=3, seed=5)):
        if step == 7:
            raise Killed  # after the checkpoint of step 4 and the history entry of step 6
        return batches(step)

    with pytest.raises(Killed):
        Trainer(make_stage(0), config, tmp_path / "b").fit(dies_at_step_7)
    torch.manual_seed(999)  # a new process has its own RNG state
    resumed = Trainer(make_stage(1), config, tmp_path / "b")  # fresh objects, another initialisation
    resumed_history = resumed.fit(StepBatches(ToyDataset(10), batch_size=3, seed=5))

    a, b = state_of(straight), state_of(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed_history == history and [h["step"] for h in history] == [2, 4, 6, 8, 10, 12]
    assert resumed.step == n and resumed.optimizer_steps == straight.optimizer_steps


def test_resume_needs_the_rng_state(tmp_path):
    # the same experiment with the RNG states removed from the checkpoint differs: the test above can fail
    straight = Trainer(make_stage(0), quiet(6), tmp_path / "a")
    straight.fit(StepBatches(ToyDataset(10), 3, seed=5))
    Trainer(make_stage(0), quiet(3), tmp_path / "b").fit(StepBatches(ToyDataset(10), 3, seed=5))
    path = tmp_path / "b" / "last.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    save_file({k: v for k, v in load_file(str(path)).items() if not k.startswith("rng.")}, str(path), metadata)
    resumed = Trainer(make_stage(0), quiet(6), tmp_path / "b")
    with pytest.warns(UserWarning, match="re-seeded"):
        resumed.fit(StepBatches(ToyDataset(10), 3, seed=5))
    assert resumed.step == 6
    assert not torch.equal(straight.modules["net"][0].weight, resumed.modules["net"][0].weight)


def test_a_checkpoint_past_the_asked_steps_is_loaded_with_a_warning(tmp_path):
    Trainer(make_stage(0), quiet(4), tmp_path).fit(StepBatches(ToyDataset(10), 3))
    shorter = Trainer(make_stage(0), quiet(2), tmp_path)
    with pytest.warns(UserWarning, match="4 steps, more than the 2 asked for"):
        history = shorter.fit(StepBatches(ToyDataset(10), 3))
    assert shorter.step == 4 and history[-1]["step"] == 4  # loaded, not trained again


def test_checkpoint_contents_and_load_weights(tmp_path):
    trainer = Trainer(make_stage(0), quiet(4, checkpoint_every=2), tmp_path)
    trainer.fit(StepBatches(ToyDataset(), 2))
    path = tmp_path / "last.safetensors"
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]  # no temporary file left
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert {"modules.net.0.weight", "ema.net.0.weight", "modules.head.weight", "rng.rank0.cpu",
            "optimizers.net.0.exp_avg", "optimizers.net.0.step"} <= keys
    meta = read_checkpoint_metadata(path)
    assert meta["step"] == 4 and meta["optimizer_steps"] == {"net": 2, "head": 2}
    assert meta["optimizers"]["net"]["param_groups"][0]["betas"] == [0.8, 0.99]

    ema, raw = load_weights(path, "net"), load_weights(path, "net", ema=False)
    assert torch.equal(raw["0.weight"], trainer.modules["net"][0].weight)
    assert torch.equal(ema["0.weight"], trainer.ema["net"][0].weight)
    assert not torch.equal(ema["0.weight"], raw["0.weight"])  # the EMA lags behind
    fresh = make_stage(3).net
    fresh.load_state_dict(ema)
    with pytest.raises(KeyError, match="ema=False"):
        load_weights(path, "head")  # no EMA of head
    with pytest.raises(FileNotFoundError, match="train"):
        load_weights(tmp_path / "missing.safetensors", "net")

    # a finished run loads back and does nothing more
    again = Trainer(make_stage(7), quiet(4), tmp_path)
    history = again.fit(lambda step: pytest.fail("a finished run must not ask for batches"))
    assert again.step == 4 and history == trainer.history
    assert torch.equal(again.modules["net"][0].weight, trainer.modules["net"][0].weight)


def test_ema_follows_its_optimizer_with_warmup():
    trainer = Trainer(make_stage(0), quiet(1, ema_decay=0.5), None)
    trainer.fit(StepBatches(ToyDataset(), 2))  # one "net" step: first EMA update copies (decay 0)
    assert torch.equal(trainer.ema["net"][0].weight, trainer.modules["net"][0].weight)
    before = trainer.ema["net"][0].weight.clone()
    trainer.config.steps = 2
    trainer.fit(StepBatches(ToyDataset(), 2))  # a "head" step: the EMA of net does not move
    assert torch.equal(trainer.ema["net"][0].weight, before)
    assert trainer.ema_updates == {"net": 1}


# ----------------------------------------------------------------------------------------------------
# NaN / inf guard

def test_non_finite_steps_are_skipped_and_reported(capsys):
    stage = make_stage(0, nan_steps={2, 3}, bad_gradient_steps={6})
    trainer = Trainer(stage, TrainConfig(steps=8, max_bad_steps=2, log_every=1, device="cpu"), None)
    history = trainer.fit(StepBatches(ToyDataset(), 2))
    assert trainer.bad_steps == 3
    assert trainer.optimizer_steps == {"net": 2, "head": 3}  # steps 2, 3 and 6 skipped
    assert [h["bad_steps"] for h in history] == [0, 0, 1, 2, 2, 2, 3, 3]
    assert all(math.isfinite(p.abs().sum().item()) for p in stage.net.parameters())
    out = capsys.readouterr()
    assert "step 2: non-finite loss" in out.out and "step 6: non-finite gradient" in out.out
    assert "bad=3" in out.err  # the progress bar


def test_skipped_steps_leave_weights_untouched():
    stage = make_stage(0, nan_steps=set(range(4)))
    before = {k: v.clone() for k, v in stage.net.state_dict().items()}
    Trainer(stage, quiet(4, max_bad_steps=4), None).fit(StepBatches(ToyDataset(), 2))
    assert all(torch.equal(before[k], v) for k, v in stage.net.state_dict().items())


def test_too_many_bad_steps_stop_with_advice():
    trainer = Trainer(make_stage(0, nan_steps=set(range(3, 100))), quiet(50, max_bad_steps=4), None)
    with pytest.raises(RuntimeError, match="(?s)5 steps in a row.*lower learning rate"):
        trainer.fit(StepBatches(ToyDataset(), 2))
    assert trainer.step == 7  # steps 3, 4, 5, 6 tolerated, step 7 is one too many


def test_unknown_optimizer_name_is_explained():
    class Wrong(ToyStage):
        def training_step(self, batch, step):
            _, loss, numbers = super().training_step(batch, step)
            return "generator", loss, numbers
    with pytest.raises(KeyError, match="net, head"):
        Trainer(Wrong(), quiet(1), None).fit(StepBatches(ToyDataset(), 2))


# ----------------------------------------------------------------------------------------------------
# Batches

def test_step_batches_are_a_function_of_the_step():
    dataset = ToyDataset(10)
    batches = StepBatches(dataset, batch_size=3, seed=1)
    assert batches.steps_per_epoch == 3
    epoch0 = [i for s in range(3) for i in batches(s)["index"].tolist()]
    assert len(set(epoch0)) == 9  # a permutation, last incomplete batch dropped
    assert batches(3)["index"].tolist() != batches(0)["index"].tolist()  # a new epoch, a new order
    assert torch.equal(batches(4)["x"], batches(4)["x"]) and dataset.epoch == 1
    assert not torch.equal(batches(0)["x"][0], batches(3)["x"][0])  # set_epoch changed the items

    # two ranks share an epoch without overlap
    r0, r1 = (StepBatches(ToyDataset(10), 2, seed=1, rank=r, world_size=2) for r in (0, 1))
    seen0 = {i for s in range(2) for i in r0.indices(s)}
    seen1 = {i for s in range(2) for i in r1.indices(s)}
    assert len(seen0) == len(seen1) == 4 and not seen0 & seen1

    # a DataLoader with workers gives the same batches, in order, after jumps and across epochs
    workers = StepBatches(ToyDataset(10), batch_size=3, seed=1, num_workers=2)
    for step in [0, 1, 2, 3, 4, 1, 7, 8]:
        torch.manual_seed(step)
        got, after_workers = workers(step), torch.rand(1)
        torch.manual_seed(step)
        want, after_direct = batches(step), torch.rand(1)
        assert torch.equal(got["x"], want["x"]) and torch.equal(got["index"], want["index"]), step
        assert torch.equal(after_workers, after_direct), step  # the global RNG is left as direct indexing leaves it

    with pytest.raises(ValueError, match="lower batch_size"):
        StepBatches(ToyDataset(3), batch_size=2, world_size=2)


# ----------------------------------------------------------------------------------------------------
# DDP: two CPU processes with gloo

def _ddp_worker(rank, world_size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=60))
    try:
        stage = make_stage(0, nan_steps={2} if rank == 1 else set())  # a NaN on one rank only
        initial = {k: v.clone() for k, v in stage.net.state_dict().items()}
        trainer = Trainer(stage, quiet(6, checkpoint_every=3), os.path.join(out, "checkpoints"))
        assert isinstance(stage.net, nn.parallel.DistributedDataParallel)
        trainer.fit(StepBatches(ToyDataset(16), batch_size=2, seed=0, rank=rank, world_size=world_size))
        torch.save({"initial": initial, "final": {n: m.state_dict() for n, m in trainer.modules.items()},
                    "bad_steps": trainer.bad_steps}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def test_ddp_two_processes_stay_in_sync(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name in ("net", "head"):
        for key, value in r0["final"][name].items():
            assert torch.equal(value, r1["final"][name][key]), (name, key)
    assert not torch.equal(r0["final"]["net"]["0.weight"], r0["initial"]["0.weight"])
    assert r0["bad_steps"] == r1["bad_steps"] == 1  # both ranks skipped step 2 together
    meta = read_checkpoint_metadata(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["step"] == 6 and meta["world_size"] == 2
    with safe_open(str(tmp_path / "checkpoints" / "last.safetensors"), "pt") as f:
        assert {"rng.rank0.cpu", "rng.rank1.cpu"} <= set(f.keys())
