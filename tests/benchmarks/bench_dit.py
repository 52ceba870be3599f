"""Benchmark: samod's DiT vs diffusers' StableAudioDiTModel, a training step and an inference step.

Both models are built at the same config with the same (random) weights and timed side by side in one
run, alternating, so machine noise hits both alike. Two measurements, median of --repeats each:
- training: forward + backward of a mean-square loss on a batch of B latents (model in train mode);
- inference: one sampler step with classifier-free guidance, a forward pass on 2B (cond + uncond), no grad.
Prints seconds per step and the ratio of speeds samod / diffusers (> 1: samod is faster).

    .venv/bin/python tests/benchmarks/bench_dit.py [--width 256] [--depth 4] [--heads 8] [--frames 646]
        [--batch 2] [--repeats 5] [--device cuda] [--dtype bfloat16]

diffusers is a test-only dependency (requirements-dev.txt); samod never imports it.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_dit import diffusers_dit, run_peer  # noqa: E402  the one key mapping the parity test uses

from samod.dit import DiTConfig, dit_inputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--frames", type=int, default=646, help="latent frames (646 = 30 s at 21.5 Hz)")
    parser.add_argument("--tokens", type=int, default=128, help="text tokens (SAO's T5: 128)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)

    heads_per_kv = 2  # as SAO: each key/value head shared by 2 query heads, cond_dim = kv heads x head dim
    cfg = DiTConfig(width=a.width, depth=a.depth, heads=a.heads, cross_kv_heads=a.heads // heads_per_kv,
                    cond_dim=a.width // heads_per_kv)
    peer, ours = diffusers_dit(cfg)  # same random weights, every parameter non-zero
    peer, ours = peer.to(a.device, dtype), ours.to(a.device, dtype)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, cfg.latent_channels, a.frames, generator=g)
    t = torch.rand(a.batch, generator=g)
    text = torch.randn(a.batch, a.tokens, cfg.cond_dim, generator=g)
    start, total = (torch.randn(a.batch, 1, cfg.cond_dim, generator=g) for _ in range(2))
    context, global_cond = dit_inputs(text, start, total)
    train_args = [v.to(a.device, dtype) for v in (x, t, context, global_cond)]
    cfg_args = [torch.cat([v, w]).to(a.device, dtype) for v, w in
                ((x, x), (t, t), (context, torch.zeros_like(context)), (global_cond, global_cond))]

    def train_step(model, forward):
        def step():
            model.train().zero_grad(set_to_none=True)
            forward(*train_args).float().square().mean().backward()
        return step

    def infer_step(model, forward):
        def step():
            with torch.inference_mode():
                model.eval()
                forward(*cfg_args)
        return step

    def peer_forward(x, t, context, global_cond):  # rotary computed once, outside the loop, as the pipeline does
        return peer(x, t, encoder_hidden_states=context, global_hidden_states=global_cond[:, None],
                    rotary_embedding=rotary, return_dict=False)[0]

    rotary = [r.to(a.device) for r in get_1d_rotary_pos_embed(cfg.head_dim // 2, a.frames + 1, use_real=True,
                                                              repeat_interleave_real=False)]

    with torch.inference_mode():
        expected = peer_forward(*cfg_args).float()
        assert torch.equal(expected, run_peer(peer.eval(), cfg, *cfg_args).float()), "rotary as in the parity test"
        diff = ((ours.eval()(*cfg_args).float() - expected).abs().max() / expected.abs().max()).item()
    assert diff < (1e-5 if dtype == torch.float32 else 5e-2), f"the models disagree ({diff:.1e}): not a fair comparison"

    def timed(fn) -> float:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        begin = time.perf_counter()
        fn()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - begin

    print(f"config: width {a.width}, depth {a.depth}, heads {a.heads} (kv {cfg.cross_kv_heads}), {a.frames} frames, "
          f"{a.tokens} text tokens, batch {a.batch}, {a.dtype} on {a.device}, {a.threads} threads, "
          f"{a.repeats} repeats (median); max |samod - diffusers| / max |diffusers| {diff:.1e}")
    for what, make in (("training (fwd + bwd, B)", train_step), ("inference (CFG fwd, 2B)", infer_step)):
        fns = {"samod": make(ours, ours), "diffusers": make(peer, peer_forward)}
        for fn in fns.values():
            fn()  # warm-up
        times = {k: [] for k in fns}
        for _ in range(a.repeats):
            for name, fn in fns.items():
                times[name].append(timed(fn))
        median = {k: statistics.median(v) for k, v in times.items()}
        print(f"{what}: samod {median['samod'] * 1e3:8.1f} ms, diffusers {median['diffusers'] * 1e3:8.1f} ms, "
              f"ratio samod / diffusers speed: {median['diffusers'] / median['samod']:.2f}")


if __name__ == "__main__":
    main()
