"""The training loop: one `Trainer` for every stage (autoencoder, CLAP, DiT), resumable to the bit.

Every model of Stable Audio 2 is trained the same way (paper 1 §3; Stable Audio Open §4; the reference
implementation stable-audio-tools, "SAT", trains them all with AdamW, an inverse-power learning-rate
schedule with exponential warm-up, and an exponential moving average (EMA) of the weights). What
differs between stages is only what one step computes, so a stage is a small object (`Stage`) that
says which modules it trains, with which optimizers, and what the loss of step `step` is; the
`Trainer` does the rest:

- AdamW per optimizer, its learning rate set before every step by `OptimizerConfig.lr_at` (SAT's
  InverseLR, written out below);
- EMA copies of the modules the stage names, decay warmed up as in ema_pytorch (used by SAT);
- a NaN/inf guard: a step whose loss or gradient is not finite is skipped and counted, and too many in
  a row stop the run with advice (SAT users report NaNs at the VAE learning rates on small data);
- gradient clipping (optional), mixed precision (bf16 autocast: on CUDA by default, on request on the
  CPU, where torch autocasts too), a tqdm bar with the latest losses;
- multi-process data parallelism with torch DDP under torchrun: `init_distributed` joins the process group that
  torchrun's environment describes (NCCL on CUDA, gloo on the CPU), StepBatches gives each rank its share;
- checkpoints in one safetensors file holding everything a run needs to continue exactly as if it had
  never stopped: weights, EMA weights, optimizer states, counters, history and the RNG states.

Exact resumption rests on two rules: the batch of step s is a pure function of s (`StepBatches`), and
every random number a stage draws comes from torch's global RNG, whose state the checkpoint keeps.

Taught in notebooks/01_autoencoder.ipynb (the first stage trained with it).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Subset, default_collate
from tqdm.auto import tqdm

CHECKPOINT_NAME = "last.safetensors"
FORMAT_VERSION = 1
PRECISIONS = ("auto", "bf16", "fp32")  # TrainConfig.precision


# ----------------------------------------------------------------------------------------------------
# Optimizer and learning-rate schedule

@dataclass
class OptimizerConfig:
    """AdamW with SAT's InverseLR schedule (stable_audio_tools/training/utils.py)."""
    lr: float = 1e-4  # base (peak) learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    weight_decay: float = 0.0  # decoupled weight decay (AdamW)
    eps: float = 1e-8  # Adam's denominator epsilon
    inv_gamma: float = 1.0  # steps after which the decay factor is 2^-power
    power: float = 0.0  # decay exponent; 0 = no decay
    warmup: float = 0.0  # exponential warm-up factor in [0, 1); 0 = no warm-up
    final_lr: float = 0.0  # lower bound of the decayed lr (absolute, as SAT; the warm-up scales it too)

    def __post_init__(self):
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be in [0, 1) (it is the factor of 1 - warmup^(k+1)), got {self.warmup}")
        if self.inv_gamma <= 0:
            raise ValueError(f"inv_gamma must be positive (a number of steps), got {self.inv_gamma}")

    def lr_at(self, k: int) -> float:
        """Learning rate of this optimizer's step k (k = optimizer steps already taken, from 0).

        SAT's InverseLR with last_epoch = k:
            warm-up  w_k  = 1 - warmup^(k + 1)                      rises from 1 - warmup towards 1
            decay    d_k  = (1 + k / inv_gamma)^(-power)            1 at k = 0, 2^-power at k = inv_gamma
            lr_k          = w_k * max(final_lr, lr * d_k)
        """
        w_k = 1.0 - self.warmup ** (k + 1)
        d_k = (1.0 + k / self.inv_gamma) ** (-self.power)
        return w_k * max(self.final_lr, self.lr * d_k)

    def make(self, params: Iterable[nn.Parameter]) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=self.lr_at(0), betas=tuple(self.betas),
                                 weight_decay=self.weight_decay, eps=self.eps)


# ----------------------------------------------------------------------------------------------------
# What a training stage provides

class Stage(Protocol):
    """One training stage. The keys of `modules()` must be attribute names of the stage: under DDP the
    Trainer replaces `stage.<name>` by a DistributedDataParallel wrapper of that module, so
    `training_step` should call modules (their forward), not reach into their sub-modules. A stage that
    needs another method or a sub-module keeps a second attribute holding the plain module, which the
    Trainer leaves alone (ClapStage.encoder, DiffusionStage.plain_model); it never unwraps DDP itself."""

    def modules(self) -> dict[str, nn.Module]:
        """Everything that is saved in a checkpoint, by name."""

    def optimizers(self) -> dict[str, tuple[Iterable[nn.Parameter], OptimizerConfig]]:
        """One AdamW per name, over the given parameters."""

    def ema_modules(self) -> list[str]:
        """Names (keys of modules()) of the modules that get an EMA copy."""

    def training_step(self, batch: Any, step: int) -> tuple[str, torch.Tensor, dict[str, float]]:
        """(name of the optimizer to step, loss to backpropagate, numbers to log) for step `step`."""


@dataclass
class TrainConfig:
    steps: int = 1000  # total number of steps; a resumed run continues up to this number
    ema_decay: float = 0.9999  # largest EMA decay (SAT: 0.9999 for the VAE and the DiT)
    ema_power: float | None = 0.75  # EMA warm-up: decay_n = min(ema_decay, 1 - (1+n)^-power); None = constant
    checkpoint_every: int = 1000  # write checkpoint_dir/last.safetensors every this many steps, and at the end
    log_every: int = 10  # append the latest numbers to the history every this many steps
    max_bad_steps: int = 10  # consecutive non-finite steps tolerated (skipped); one more stops the run
    grad_clip: float | None = None  # clip the gradient norm of each optimizer's parameters; None = off
    seed: int = 0  # seeds torch's global RNG at the start of a fresh run (plus the rank under DDP)
    progress: bool = True  # tqdm bar (rank 0 only)
    device: str | None = None  # None: cuda (this rank's GPU) when available, else cpu
    precision: str = "auto"  # "bf16": the step under bfloat16 autocast (weights, gradients, Adam and EMA stay
    # float32; STFTs and loss logs are float32 islands); "fp32": no autocast; "auto": bf16 on CUDA, fp32 elsewhere
    desc: str = "training"  # label of the progress bar

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (auto = bf16 on CUDA, fp32 "
                             f"elsewhere), got {self.precision!r}")

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """The dtype the training step is autocast to on `device`: torch.bfloat16, or None (float32)."""
        if self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda"):
            return torch.bfloat16
        return None


# ----------------------------------------------------------------------------------------------------
# Batches as a function of the step

def init_distributed() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment), once; True when distributed.

    NCCL on CUDA, gloo on the CPU. StepBatches and the Trainer call it, so that every recipe's training function runs
    under `torchrun --nproc_per_node N` unchanged; a program that initialised torch.distributed itself keeps its group.
    """
    if not dist.is_available():
        return False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")  # rank, size, address: from env
    return dist.is_initialized()


class StepBatches:
    """batches(step) -> the batch of that step, identical however the run was interrupted.

    Epoch e = step // steps_per_epoch uses a permutation of the dataset drawn from a torch.Generator
    seeded by (seed, e); rank r of W takes every W-th index of it (as DistributedSampler does) and
    cuts it into batches of `batch_size`; the last incomplete batch of an epoch is dropped. Before
    reading an epoch, `dataset.set_epoch(e)` is called when the dataset has it (SongDataset: new crops
    and prompts). With num_workers > 0 a DataLoader iterator is kept for consecutive steps (speed);
    its batches equal those of direct indexing, since items depend only on (seed, epoch, index).
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, rank: int | None = None, world_size: int | None = None,
                 num_workers: int = 0):
        distributed = init_distributed()  # rank and world_size default to the process group's (torchrun), else 0 and 1
        rank = rank if rank is not None else dist.get_rank() if distributed else 0
        world_size = world_size if world_size is not None else dist.get_world_size() if distributed else 1
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.steps_per_epoch = len(dataset) // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise ValueError(f"a dataset of {len(dataset)} items cannot fill one batch of {batch_size} on each "
                             f"of {world_size} process(es); lower batch_size or add data")
        self._cached: tuple[int, int, Any] | None = None  # (epoch, next batch index, DataLoader iterator)

    def epoch_share(self, epoch: int) -> list[int]:
        """This rank's dataset indices for `epoch`, in the order they are read."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        permutation = torch.randperm(len(self.dataset), generator=generator)  # (items,)
        return permutation[self.rank::self.world_size].tolist()  # every world_size-th index from `rank`

    def indices(self, step: int) -> list[int]:
        """The dataset indices of this rank's batch at `step`."""
        epoch, i = divmod(step, self.steps_per_epoch)
        return self.epoch_share(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def __call__(self, step: int):
        epoch, i = divmod(step, self.steps_per_epoch)
        if self.num_workers == 0:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            return default_collate([self.dataset[j] for j in self.indices(step)])
        if self._cached is None or self._cached[:2] != (epoch, i):  # start an iterator at batch i of epoch
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)  # before the workers copy the dataset
            rest = self.epoch_share(epoch)[i * self.batch_size:self.steps_per_epoch * self.batch_size]
            # the workers' base seed comes from a generator of (seed, epoch), not the global RNG: drawing it
            # there would change the training step's random numbers (noise, CFG dropout) and a resumed run
            loader = DataLoader(Subset(self.dataset, rest), batch_size=self.batch_size,
                                num_workers=self.num_workers, collate_fn=default_collate,
                                generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            self._cached = (epoch, i, iter(loader))
        batch = next(self._cached[2])
        self._cached = (epoch, i + 1, self._cached[2])
        return batch


# ----------------------------------------------------------------------------------------------------
# Optimizer states in a checkpoint (safetensors holds only tensors)

def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as (tensors, JSON-able rest).

    The tensors of the per-parameter state are keyed "<parameter index>.<field>" (e.g. "0.exp_avg",
    "0.step"; the checkpoint prefixes them with "optimizers.<name>."); the rest is
    {"param_groups": ..., "other": {non-tensor per-parameter state, keyed the same way}}.
    """
    tensors, other = {}, {}
    for index, param_state in state_dict["state"].items():
        for field, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{field}"] = value
            else:
                other[f"{index}.{field}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "other": other}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """The state_dict that flatten_optimizer_state split into `tensors` and `rest` (`rest` read back from JSON)."""
    state: dict[int, dict] = {}
    for key, value in (tensors | rest["other"]).items():  # disjoint keys: a field is a tensor or not
        index, field = key.split(".", 1)
        state.setdefault(int(index), {})[field] = value
    # JSON made lists of the tuples (betas); "params" is a list in torch's own state_dict too
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
              for group in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------------------------------
# The trainer

class Trainer:
    """Trains `stage` for `config.steps` steps, checkpointing into `checkpoint_dir` (None: never)."""

    def __init__(self, stage: Stage, config: TrainConfig, checkpoint_dir: str | Path | None):
        self.stage, self.config = stage, config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.distributed = init_distributed()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device(config.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

        self.modules = dict(stage.modules())  # the plain modules: checkpoints hold these
        for module in self.modules.values():
            module.to(self.device)
        self.optimizers, self.schedules, self.params = {}, {}, {}
        for name, (params, opt_config) in stage.optimizers().items():
            self.params[name] = [p for p in params]
            self.optimizers[name], self.schedules[name] = opt_config.make(self.params[name]), opt_config
        self.ema = {}
        for name in stage.ema_modules():
            if name not in self.modules:
                raise KeyError(f"ema_modules() names {name!r}, which is not a key of modules() "
                               f"({', '.join(self.modules)})")
            self.ema[name] = deepcopy(self.modules[name]).eval().requires_grad_(False)
        # which EMA copies follow which optimizer: those whose module has parameters in it
        ids = {name: {id(p) for p in params} for name, params in self.params.items()}
        self.ema_of = {opt: [m for m in self.ema if ids[opt] & {id(p) for p in self.modules[m].parameters()}]
                       for opt in self.optimizers}

        self.step = 0  # steps done; the next step to run
        self.optimizer_steps = {name: 0 for name in self.optimizers}  # the k of OptimizerConfig.lr_at
        self.ema_updates = {name: 0 for name in self.ema}  # the n of the EMA warm-up
        self.bad_steps, self.bad_in_a_row = 0, 0
        self.history: list[dict] = []
        self.latest: dict[str, float] = {}  # the last value of every logged number
        if self.distributed:
            self._wrap_for_ddp()

    def _wrap_for_ddp(self) -> None:
        """Replace every trainable `stage.<name>` by a DDP wrapper of it; the stage then calls the wrappers,
        while self.modules (and the stage's own second references, if any) keep the plain modules."""
        for name, module in self.modules.items():
            if getattr(self.stage, name, None) is not module:
                raise AttributeError(f"under DDP the Trainer replaces stage.{name} by a wrapped module, "
                                     f"but the stage has no attribute {name!r} holding modules()[{name!r}]; "
                                     f"name the keys of modules() after the stage's attributes")
            if any(p.requires_grad for p in module.parameters()):
                setattr(self.stage, name, nn.parallel.DistributedDataParallel(
                    module, device_ids=[self.device.index] if self.device.type == "cuda" else None))

    # -- the loop -------------------------------------------------------------------------------------

    def fit(self, batches: Callable[[int], Any]) -> list[dict]:
        """Train until config.steps, resuming from checkpoint_dir/last.safetensors when it exists.

        `batches(step)` must return the batch of `step` (the same batch every time: see StepBatches).
        Returns the history: one dict of the latest numbers every `log_every` steps.
        """
        config = self.config
        path = self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir else None
        if path is not None and path.exists():
            self.load_checkpoint(path)
            if self.step > config.steps:  # e.g. a notebook's live run, left by a version that trained it longer
                warnings.warn(f"{path} holds a run of {self.step} steps, more than the {config.steps} asked for: it "
                              f"is loaded as it is and nothing is trained. Delete {self.checkpoint_dir} to train "
                              f"{config.steps} steps from the start")
        elif self.step == 0:
            torch.manual_seed(config.seed + self.rank)  # seeds CUDA too; each rank draws its own dropout
        for module in self.modules.values():
            if any(p.requires_grad for p in module.parameters()):
                module.train()  # frozen modules (e.g. a pretrained text encoder) keep the mode the stage set
        bar = tqdm(total=config.steps, initial=self.step, desc=config.desc, dynamic_ncols=True,
                   disable=not config.progress or self.rank != 0)
        autocast_dtype = config.autocast_dtype(self.device)  # bfloat16, or None: float32
        while self.step < config.steps:
            batch = _to_device(batches(self.step), self.device)
            with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                name, loss, numbers = self.stage.training_step(batch, self.step)
            if name not in self.optimizers:
                raise KeyError(f"training_step returned optimizer {name!r}; the stage's optimizers() "
                               f"are {', '.join(self.optimizers)}")
            grad_norm, problem = self._backward(name, loss)  # problem: "loss" or "gradient" if not finite
            if problem is None:
                self._step(name, grad_norm)  # scheduled lr, AdamW step, EMA
            else:
                self._skip(name, problem)  # the weights stay as they are
            self.step += 1
            self._log(name, loss, numbers, bar)
            if path is not None and (self.step % config.checkpoint_every == 0 or self.step == config.steps):
                self.save_checkpoint(path)
        bar.close()
        if self.distributed:
            dist.barrier()  # no rank goes on before rank 0 has written the last checkpoint
        return self.history

    def _backward(self, name: str, loss: torch.Tensor) -> tuple[float, str | None]:
        """Backpropagate `loss` and clip the gradient of optimizer `name`'s parameters.

        Returns (the gradient norm before clipping, None), or (a non-finite number, "loss" or "gradient")
        when the loss or the gradient is not finite: a non-finite loss is not backpropagated.
        """
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)  # also the grads a step leaves in other optimizers' parameters
        bad = torch.tensor(float(not torch.isfinite(loss.detach()).all()), device=self.device)
        if self.distributed:  # every rank must agree, or DDP's gradient all-reduce would wait forever
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            return float("nan"), "loss"
        loss.backward()  # under DDP the gradients are averaged over ranks here
        grad_norm = nn.utils.clip_grad_norm_(self.params[name], self.config.grad_clip or math.inf).item()
        return grad_norm, None if math.isfinite(grad_norm) else "gradient"

    def _step(self, name: str, grad_norm: float) -> None:
        """Step optimizer `name` at its scheduled learning rate, then the EMA copies that follow it."""
        self.bad_in_a_row = 0
        k = self.optimizer_steps[name]
        for group in self.optimizers[name].param_groups:
            group["lr"] = self.schedules[name].lr_at(k)  # SAT's InverseLR, see OptimizerConfig.lr_at
        self.optimizers[name].step()
        self.optimizer_steps[name] = k + 1
        self.latest[f"grad_norm/{name}"] = grad_norm
        for module_name in self.ema_of[name]:
            self._update_ema(module_name)

    def _skip(self, name: str, what: str) -> None:
        """Count a step whose `what` ("loss" or "gradient") was not finite, and drop its gradients;
        more than max_bad_steps such steps in a row stop the run."""
        self.bad_steps, self.bad_in_a_row = self.bad_steps + 1, self.bad_in_a_row + 1
        if self.rank == 0 and self.config.progress:
            tqdm.write(f"step {self.step}: non-finite {what} for optimizer {name!r}, step skipped "
                       f"({self.bad_in_a_row} in a row, {self.bad_steps} in total)")
        if self.bad_in_a_row > self.config.max_bad_steps:
            raise RuntimeError(
                f"training stopped at step {self.step}: {self.bad_in_a_row} steps in a row had a non-finite "
                f"{what} (NaN or inf) and were skipped (max_bad_steps={self.config.max_bad_steps}). The "
                f"weights were not changed by them; the last checkpoint in {self.checkpoint_dir} is intact. "
                f"Try a lower learning rate (SAT's VAE rates are known to diverge on small data), "
                f"grad_clip (e.g. 1.0), a longer warm-up, or check the data for silent or clipped audio.")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _update_ema(self, name: str) -> None:
        """ema <- decay * ema + (1 - decay) * weights, decay_n = min(ema_decay, 1 - (1 + n)^-ema_power).

        n counts the updates made so far: n = 0 copies the weights, and the decay approaches ema_decay
        as training goes on (ema_pytorch's warm-up with inv_gamma = 1, as SAT uses it). Buffers are copied.
        """
        n, config = self.ema_updates[name], self.config
        decay = config.ema_decay
        if config.ema_power is not None:
            decay = min(config.ema_decay, 1 - (1 + n) ** -config.ema_power)
        for ema_p, p in zip(self.ema[name].parameters(), self.modules[name].parameters()):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - decay)
        for ema_b, b in zip(self.ema[name].buffers(), self.modules[name].buffers()):
            ema_b.copy_(b)
        self.ema_updates[name] = n + 1

    def _log(self, name: str, loss: torch.Tensor, numbers: dict[str, float], bar: tqdm) -> None:
        """Keep the latest numbers of the step just done, append them to the history every log_every steps
        (and at the last), and show the losses on the progress bar."""
        self.latest.update({key: float(value) for key, value in numbers.items()})
        self.latest[f"loss/{name}"] = loss.item()
        self.latest[f"lr/{name}"] = self.optimizers[name].param_groups[0]["lr"]
        self.latest["bad_steps"] = self.bad_steps
        if self.step % self.config.log_every == 0 or self.step == self.config.steps:
            self.history.append({"step": self.step, **self.latest})
        bar.update(1)
        bar.set_postfix({k.removeprefix("loss/"): f"{v:.4g}" for k, v in self.latest.items()
                         if k.startswith("loss/")} | {"bad": self.bad_steps}, refresh=False)

    # -- checkpoints ----------------------------------------------------------------------------------

    def save_checkpoint(self, path: str | Path) -> None:
        """Write everything needed to continue. Rank 0 writes; every rank must call it (RNG states are gathered)."""
        rng = {"cpu": torch.get_rng_state()}  # uint8 tensor
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = [rng]
        if self.distributed:
            rngs = [None] * self.world_size
            dist.all_gather_object(rngs, rng)
        if self.rank != 0:
            return
        tensors = {f"rng.rank{r}.{kind}": state.cpu()  # e.g. rng.rank0.cpu, rng.rank0.cuda
                   for r, states in enumerate(rngs) for kind, state in states.items()}
        for prefix, modules in (("modules", self.modules), ("ema", self.ema)):
            for name, module in modules.items():
                tensors.update({f"{prefix}.{name}.{k}": v for k, v in module.state_dict().items()})
        meta = {"format": FORMAT_VERSION, "step": self.step, "optimizer_steps": self.optimizer_steps,
                "ema_updates": self.ema_updates, "bad_steps": self.bad_steps, "bad_in_a_row": self.bad_in_a_row,
                "world_size": self.world_size, "history": self.history, "latest": self.latest,
                "train_config": asdict(self.config), "optimizers": {}}
        for name, optimizer in self.optimizers.items():  # tensors to the file, the rest to the JSON
            flat, meta["optimizers"][name] = flatten_optimizer_state(optimizer.state_dict())
            tensors.update({f"optimizers.{name}.{k}": v for k, v in flat.items()})
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        save_file(tensors, str(temporary), metadata={"samod": json.dumps(meta)})
        os.replace(temporary, path)  # atomic: a kill leaves either the old or the new checkpoint

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore the state written by save_checkpoint (every rank reads the same file)."""
        tensors, meta = load_file(str(path)), read_checkpoint_metadata(path)
        if set(meta["optimizers"]) != set(self.optimizers) or set(meta["ema_updates"]) != set(self.ema):
            raise ValueError(f"{path} was written by a stage with optimizers {sorted(meta['optimizers'])} and EMA "
                             f"modules {sorted(meta['ema_updates'])}, this one has {sorted(self.optimizers)} and "
                             f"{sorted(self.ema)}; use another checkpoint_dir for a different stage")
        for prefix, modules in (("modules", self.modules), ("ema", self.ema)):
            for name, module in modules.items():
                module.load_state_dict(_strip(tensors, f"{prefix}.{name}."))
        for name, optimizer in self.optimizers.items():
            flat = _strip(tensors, f"optimizers.{name}.")
            optimizer.load_state_dict(unflatten_optimizer_state(flat, meta["optimizers"][name]))
        self.step, self.bad_steps, self.bad_in_a_row = meta["step"], meta["bad_steps"], meta["bad_in_a_row"]
        self.optimizer_steps, self.ema_updates = meta["optimizer_steps"], meta["ema_updates"]
        self.history, self.latest = meta["history"], meta["latest"]
        if f"rng.rank{self.rank}.cpu" in tensors and meta["world_size"] == self.world_size:
            torch.set_rng_state(tensors[f"rng.rank{self.rank}.cpu"])
            if self.device.type == "cuda" and f"rng.rank{self.rank}.cuda" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.rank{self.rank}.cuda"], self.device)
        else:
            warnings.warn(f"{path} was written by {meta['world_size']} process(es), this run has {self.world_size}"
                          f" (or the RNG states are missing): "
                          f"the RNG is re-seeded, so the run continues but not bit-identically")
            torch.manual_seed(self.config.seed + self.rank + 1_000_003 * self.step)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file: ties a derived artifact (latent cache, DiT) to the exact checkpoint it came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint_metadata(path: str | Path) -> dict:
    """The JSON part of a checkpoint: step, counters, history, optimizer hyperparameters, train config."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "samod" not in metadata:
        raise ValueError(f"{path} is not a samod training checkpoint (no 'samod' metadata); "
                         f"it may be an exported weight file: load it with safetensors.torch.load_file")
    return json.loads(metadata["samod"])


def load_weights(path: str | Path, module_name: str, ema: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of module `module_name` in a checkpoint: its EMA copy by default (the weights to use,
    as Stable Audio releases the EMA weights), else the raw trained weights. Load it with
    `module.load_state_dict(load_weights(path, "autoencoder"))`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train the stage first (Trainer.fit writes "
                                f"<checkpoint_dir>/{CHECKPOINT_NAME})")
    tensors = load_file(str(path))
    weights = _strip(tensors, f"{'ema' if ema else 'modules'}.{module_name}.")
    if not weights:
        available = sorted({k.split(".")[1] for k in tensors if k.startswith(("modules.", "ema."))})
        with_ema = sorted({k.split(".")[1] for k in tensors if k.startswith("ema.")})
        raise KeyError(f"{path} has no {'EMA ' if ema else ''}weights for {module_name!r}; modules: {available}, "
                       f"with EMA: {with_ema}" + (" (pass ema=False for the raw weights)" if ema else ""))
    return weights


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to `device`; leave everything else (strings, numbers) alone."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [_to_device(v, device) for v in batch]
    if isinstance(batch, tuple):
        return tuple(_to_device(v, device) for v in batch)
    return batch
