"""Data parallelism for every stage: two CPU processes with gloo, as torchrun runs them on GPUs with NCCL.

For each stage (autoencoder with its discriminator, CLAP, DiT, LoRA) both ranks train 3 steps straight, and 2
steps then a fresh process-like restart to 3 from the checkpoint (new stage objects from another initialisation).
The processes get torchrun's environment (RANK, WORLD_SIZE, ...) and nothing else: samod joins the group itself.
Checked: both ranks hold the same parameters after every run (DDP's all-reduce kept them in sync), the weights moved,
the resumed run equals the straight one bit for bit, and the checkpoint records both ranks. One spawn runs all four
stages, so that the processes start (and import torch) once.
"""
import os
import socket

import torch
import torch.distributed as dist
from torch import nn

from samod.train import StepBatches, TrainConfig, Trainer, read_checkpoint_metadata
from test_mixed_precision import (PROMPTS, autoencoder_stage, clap_batch, clap_stage, dit_stage, latent_batch,
                                  lora_stage)

STEPS = 3


def datasets(tokenizer):
    """name: (stage builder, dataset, batch size per rank); every builder draws its weights from seed 0."""
    g = torch.Generator().manual_seed(1)
    audio = [{"audio": 0.3 * torch.randn(2, 4096, generator=g)} for _ in range(4)]
    clap = clap_batch()
    songs = [{"audio": clap["audio"][i], "prompt": clap["prompt"][i]} for i in range(4)]
    latents = [dict(zip(("latents", "prompt", "seconds_start", "seconds_total"), item))
               for batch in (latent_batch(16), latent_batch(16))
               for item in zip(batch["latents"], batch["prompt"], batch["seconds_start"], batch["seconds_total"])]
    return {"autoencoder": (autoencoder_stage, audio, 1),  # steps 0, 2: generator with adversary; 1: discriminator
            "clap": (lambda: clap_stage(tokenizer), songs, 2),
            "dit": (dit_stage, latents, 2),
            "lora": (lora_stage, latents, 2)}


def weights(trainer):
    """The trained parameters. Buffers are left out: BatchNorm's running statistics (CLAP's fusion) are each
    rank's own between forwards (DDP broadcasts rank 0's at every forward; the checkpoint holds rank 0's)."""
    return {f"{n}.{k}": v.detach().clone() for n, m in trainer.modules.items() for k, v in m.named_parameters()}


def _worker(rank, world_size, port, out):
    # the environment torchrun gives each process; the group is joined by samod (train.init_distributed)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    try:
        from samod.clap import train_clap_tokenizer
        tokenizer = train_clap_tokenizer(PROMPTS * 8, vocab_size=1024)
        results = {}
        for name, (build, dataset, batch_size) in datasets(tokenizer).items():
            def batches():
                return StepBatches(dataset, batch_size, seed=3)  # this rank's share, from the process group

            def config(steps):
                return TrainConfig(steps=steps, checkpoint_every=1, log_every=1, progress=False, device="cpu")

            stage = build()
            initial = {f"{n}.{k}": v.detach().clone()
                       for n, m in stage.modules().items() for k, v in m.named_parameters()}
            straight = Trainer(stage, config(STEPS), os.path.join(out, name, "straight"))
            ddp = nn.parallel.DistributedDataParallel
            wrapped = [n for n in stage.modules() if isinstance(getattr(stage, n), ddp)]
            history = straight.fit(batches())
            Trainer(build(), config(STEPS - 1), os.path.join(out, name, "resumed")).fit(batches())
            torch.manual_seed(1234 + rank)  # a restarted process has its own RNG state and initialisation
            resumed = Trainer(build(), config(STEPS), os.path.join(out, name, "resumed"))
            resumed_history = resumed.fit(batches())
            shares = (batches().rank, batches().world_size)
            results[name] = {"shares": shares, "initial": initial, "straight": weights(straight),
                             "resumed": weights(resumed),
                             "history": history, "resumed_history": resumed_history, "wrapped": wrapped,
                             "bad_steps": straight.bad_steps, "optimizer_steps": straight.optimizer_steps}
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def test_every_stage_trains_and_resumes_under_ddp_with_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert set(r0) == {"autoencoder", "clap", "dit", "lora"}
    for name in r0:
        a, b = r0[name], r1[name]
        assert a["wrapped"], f"{name}: no module was wrapped in DistributedDataParallel"
        assert a["shares"] == (0, 2) and b["shares"] == (1, 2), name  # StepBatches split the data by rank
        assert a["bad_steps"] == 0, name
        for key, value in a["straight"].items():
            assert torch.equal(value, b["straight"][key]), (name, key)  # the ranks stayed in sync
            assert torch.equal(value, a["resumed"][key]), (name, key)  # resumption is exact under DDP too
        moved = [k for k, v in a["straight"].items() if v.is_floating_point() and not torch.equal(v, a["initial"][k])]
        assert moved, f"{name}: no weight changed"
        assert a["resumed_history"] == a["history"] and len(a["history"]) == STEPS, name
        assert [h[k] for h in a["history"] for k in h if k.startswith("loss/")] != \
            [h[k] for h in b["history"] for k in h if k.startswith("loss/")], f"{name}: the ranks saw the same data"
        meta = read_checkpoint_metadata(tmp_path / name / "resumed" / "last.safetensors")
        assert meta["step"] == STEPS and meta["world_size"] == 2, name
    assert r0["autoencoder"]["optimizer_steps"] == {"generator": 2, "discriminator": 1}
    lora_trained = [k for k, v in r0["lora"]["straight"].items() if not torch.equal(v, r0["lora"]["initial"][k])]
    assert lora_trained and all("lora_" in k for k in lora_trained)  # the base stays frozen under DDP
