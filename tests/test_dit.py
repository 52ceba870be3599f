"""The DiT: parameter count, parity with diffusers' StableAudioDiTModel, reference keys, gradients, bad input."""
import math
import re

import pytest
import torch

from stable_audio_peer import dit_to_reference
from stable_audio_peer import randomise as randomised
from samod.dit import (DiT, DiTConfig, NumberEmbedding, TimingConditioner, apply_rotary, attention, dit_inputs,
                       load_reference_state_dict, load_timing_reference_state_dict, parameter_table, reference_key,
                       rotary_embedding, timing_to_reference_state_dict, to_reference_state_dict)

# distinct numbers everywhere (C != K != E != D), 2 query heads per key/value head, head dim 32 (rotary 16)
SMALL = DiTConfig(latent_channels=16, width=128, depth=2, heads=4, cross_kv_heads=2, cond_dim=48)


def inputs(cfg: DiTConfig = SMALL, batch: int = 2, frames: int = 24, tokens: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.latent_channels, frames, generator=g)
    t = torch.rand(batch, generator=g)
    text = torch.randn(batch, tokens, cfg.cond_dim, generator=g)
    start, total = torch.randn(batch, 1, cfg.cond_dim, generator=g), torch.randn(batch, 1, cfg.cond_dim, generator=g)
    return x, t, text, start, total


def test_paper_parameter_count_on_meta_device():
    with torch.device("meta"):
        model = DiT(DiTConfig.paper())
    assert model.num_parameters() == 1_056_828_544
    assert sum(parameter_table(model).values()) == model.num_parameters()
    cfg = DiTConfig.paper()
    assert (cfg.head_dim, cfg.rotary_dim, cfg.heads // cfg.cross_kv_heads) == (64, 32, 2)
    assert cfg.cross_kv_heads * cfg.head_dim == cfg.cond_dim  # what SAT's to_kv (E -> 2E) hard-wires


def test_config_errors_teach():
    with pytest.raises(ValueError, match="not divisible by heads"):
        DiTConfig(width=100, heads=3)
    with pytest.raises(ValueError, match="not divisible by cross_kv_heads"):
        DiTConfig(heads=24, cross_kv_heads=5)
    with pytest.raises(ValueError, match="multiple of 4"):
        DiTConfig(width=60, heads=10, cross_kv_heads=5)  # head dim 6: rotary half 3 is odd
    for preset in (DiTConfig.tiny(), DiTConfig.small(), DiTConfig.paper()):
        assert preset.latent_channels == 64 and preset.head_dim % 4 == 0


# ---------------------------------------------------------------------- parity with diffusers

def diffusers_dit(cfg: DiTConfig, seed: int = 2):
    diffusers = pytest.importorskip("diffusers")
    peer = diffusers.StableAudioDiTModel(
        sample_size=64, in_channels=cfg.latent_channels, out_channels=cfg.latent_channels, num_layers=cfg.depth,
        attention_head_dim=cfg.head_dim, num_attention_heads=cfg.heads,
        num_key_value_attention_heads=cfg.cross_kv_heads, cross_attention_dim=cfg.cond_dim,
        time_proj_dim=cfg.timestep_features, global_states_input_dim=2 * cfg.cond_dim,
        cross_attention_input_dim=cfg.cond_dim).eval()
    randomised(peer, seed)
    with torch.no_grad():
        for name, p in peer.named_parameters():
            if re.search(r"norm\d\.bias$", name):
                p.zero_()  # SAT's LayerNorm has no bias (a zero buffer): diffusers' must be zero to match
    ours = DiT(cfg).eval()
    state = dit_to_reference(peer.state_dict())
    load_reference_state_dict(ours, {"model.model." + k: v for k, v in state.items()})
    return peer, ours


def run_peer(peer, cfg: DiTConfig, x, t, context, global_cond):
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    # as StableAudioPipeline: rotary over the latent frames + the global token, on the first K / 2 dims
    rotary = get_1d_rotary_pos_embed(cfg.head_dim // 2, x.shape[-1] + 1, use_real=True, repeat_interleave_real=False)
    return peer(x, t, encoder_hidden_states=context, global_hidden_states=global_cond[:, None],
                rotary_embedding=rotary, return_dict=False)[0]


def test_equals_diffusers_stable_audio_dit():
    peer, ours = diffusers_dit(SMALL)
    x, t, text, start, total = inputs()
    context, global_cond = dit_inputs(text, start, total)
    zero = torch.zeros_like(context)
    cfg_batch = tuple(torch.cat(pair) for pair in ((x, x), (t, t), (context, zero), (global_cond, global_cond)))
    with torch.no_grad():
        for case in [(x, t, context, global_cond), (x, t, zero, global_cond), cfg_batch]:
            expected, got = run_peer(peer, SMALL, *case), ours(*case)
            assert expected.abs().max() > 0.1  # a real signal through every (randomised) layer
            assert (got - expected).abs().max() < 1e-5
        # the uncond half differs from the cond half: the context matters, so (b) tested something
        assert (ours(*cfg_batch)[:2] - ours(*cfg_batch)[2:]).abs().max() > 1e-3


def test_number_embedding_equals_diffusers():
    pytest.importorskip("diffusers")
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
    peer = randomised(StableAudioProjectionModel(text_encoder_dim=48, conditioning_dim=48, min_value=0, max_value=512),
                      seed=3)
    state = {k.replace("start_number_conditioner", "seconds_start").replace("end_number_conditioner", "seconds_total")
             .replace("time_positional_embedding", "embedder.embedding"): v for k, v in peer.state_dict().items()}
    timing = load_timing_reference_state_dict(TimingConditioner(48), {"conditioner.conditioners." + k: v
                                                                       for k, v in state.items()})
    seconds_start = torch.tensor([0.0, 3.5, 600.0, -2.0])  # clamped to [0, 512]
    seconds_total = torch.tensor([10.0, 47.0, 512.0, 95.3])
    with torch.no_grad():
        out = peer(start_seconds=seconds_start, end_seconds=seconds_total)
        start, total = timing(seconds_start, seconds_total)
    assert start.shape == total.shape == (4, 1, 48)
    assert (start - out.seconds_start_hidden_states).abs().max() < 1e-5
    assert (total - out.seconds_end_hidden_states).abs().max() < 1e-5
    assert torch.allclose(start[2], timing.seconds_start(torch.tensor([512.0])), atol=1e-6)  # clamped to max


def test_number_embedding_formula():
    emb = randomised(NumberEmbedding(8, max_seconds=100.0), seed=4)
    s = torch.tensor([25.0])
    v = torch.tensor([[0.25]])
    angles = 2 * math.pi * v * emb.freqs[None]
    expected = emb.linear(torch.cat([v, angles.sin(), angles.cos()], dim=-1))
    assert torch.allclose(emb(s), expected, atol=1e-6)


# ---------------------------------------------------------------------- attention and rotary

def test_sdpa_equals_naive_softmax_attention():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, n, 16, generator=g) for n in (11, 7, 7))
    naive = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(16), dim=-1) @ v
    assert torch.allclose(attention(q, k, v), naive, atol=1e-5)
    assert torch.allclose(attention(q, k, v, flash=True), naive, atol=1e-5)  # on CPU: falls back to SDPA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="flash-attn runs on CUDA only")
def test_flash_attention_equals_sdpa_on_cuda():
    pytest.importorskip("flash_attn")
    g = torch.Generator(device="cuda").manual_seed(5)
    q, k, v = (torch.randn(2, 4, n, 64, generator=g, device="cuda", dtype=torch.bfloat16) for n in (300, 40, 40))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert (attention(q, k, v, flash=True) - expected).abs().max() < 2e-2


def test_rotary_depends_only_on_the_position_difference():
    g = torch.Generator().manual_seed(6)
    q, k = torch.randn(1, 32, generator=g), torch.randn(1, 32, generator=g)

    def score(m: int, n: int) -> torch.Tensor:
        qm = apply_rotary(q, rotary_embedding(torch.tensor([m]), 16))
        kn = apply_rotary(k, rotary_embedding(torch.tensor([n]), 16))
        return (qm * kn).sum()

    assert torch.allclose(score(3, 1), score(12, 10), atol=1e-4) and torch.allclose(score(0, 0), (q * k).sum())
    assert not torch.allclose(score(3, 1), score(1, 3), atol=1e-3)
    assert torch.equal(apply_rotary(q, rotary_embedding(torch.tensor([7]), 16))[:, 16:], q[:, 16:])  # second half


# ---------------------------------------------------------------------- model behaviour

def test_shapes_and_dit_inputs():
    model = DiT(DiTConfig.tiny())
    x, t, text, start, total = inputs(DiTConfig.tiny(), batch=3, frames=10, tokens=5)
    context, global_cond = dit_inputs(text, start, total)
    assert context.shape == (3, 7, 128) and global_cond.shape == (3, 256)
    assert torch.equal(context[:, -2:], torch.cat([start, total], dim=1))
    assert model(x, t, context, global_cond).shape == x.shape
    assert model(x, torch.tensor(0.5), context, global_cond).shape == x.shape  # one t for the batch
    timing = TimingConditioner(128)
    s, e = timing([0.0, 1.0, 2.0], [30.0, 30.0, 30.0])
    assert s.shape == e.shape == (3, 1, 128)


def test_at_initialisation_the_dit_is_a_fixed_linear_map_of_the_latents():
    # zero-init: pre conv, attention outputs and MLP outputs are zero, so every block is the identity and the
    # global token is dropped; project_out is NOT zero-init and post conv is zero -> v = W_out W_in x, whatever
    # t and the conditioning are
    model = DiT(SMALL)
    x, t, text, start, total = inputs()
    context, global_cond = dit_inputs(text, start, total)
    expected = (model.proj_out.weight @ model.proj_in.weight) @ x  # (C, C) @ (B, C, L)
    with torch.no_grad():
        v1 = model(x, t, context, global_cond)
        v2 = model(x, 1 - t, torch.randn_like(context), torch.randn_like(global_cond))
    assert torch.allclose(v1, expected, atol=1e-5) and torch.equal(v1, v2)
    assert v1.abs().max() > 1e-2  # not the zero map, not the identity
    assert not torch.allclose(v1, x, atol=1e-2)


def test_gradients_reach_every_parameter_and_checkpointing_gives_the_same():
    torch.manual_seed(0)
    model = randomised(DiT(SMALL).train(), seed=7)
    x, t, text, start, total = inputs()
    context, global_cond = dit_inputs(text, start, total)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(x, t, context, global_cond).square().mean().backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain = grads()
    assert all(g.abs().max() > 0 for g in plain.values()), [k for k, g in plain.items() if g.abs().max() == 0]
    model.config.gradient_checkpointing = True
    checkpointed = grads()
    model.config.gradient_checkpointing = False
    for k in plain:
        assert torch.allclose(plain[k], checkpointed[k], atol=1e-6), k


def test_bad_input_errors():
    model = DiT(DiTConfig.tiny())
    x, t, text, start, total = inputs(DiTConfig.tiny(), frames=8, tokens=3)
    context, global_cond = dit_inputs(text, start, total)
    with pytest.raises(ValueError, match=r"\(batch, 64, frames\)"):
        model(torch.randn(2, 32, 8), t, context, global_cond)
    with pytest.raises(ValueError, match=r"\(2, tokens, 128\).*text conditioner's width"):
        model(x, t, torch.randn(2, 5, 64), global_cond)
    with pytest.raises(ValueError, match=r"global_cond of shape \(2, 256\)"):
        model(x, t, context, global_cond[:, :128])
    with pytest.raises(ValueError, match="one timestep per item"):
        model(x, torch.rand(3), context, global_cond)
    with pytest.raises(ValueError, match=r"timing tokens \(B, 1, E\)"):
        dit_inputs(text, start[:, 0], total)


# ---------------------------------------------------------------------- reference checkpoint layout

def test_reference_keys():
    assert reference_key("time_freqs") == "timestep_features.weight"
    assert reference_key("time_embed.2.bias") == "to_timestep_embed.2.bias"
    assert reference_key("blocks.3.attn_norm.weight") == "transformer.layers.3.pre_norm.gamma"
    assert reference_key("blocks.0.cross_attn.kv.weight") == "transformer.layers.0.cross_attn.to_kv.weight"
    assert reference_key("blocks.11.mlp.proj_in.bias") == "transformer.layers.11.ff.ff.0.proj.bias"
    assert reference_key("blocks.1.mlp.proj_out.weight") == "transformer.layers.1.ff.ff.2.weight"
    assert reference_key("proj_out.weight") == "transformer.project_out.weight"


def test_reference_state_dict_round_trip_and_errors():
    model = randomised(DiT(SMALL), seed=8)
    state = to_reference_state_dict(model)
    assert torch.equal(state["model.model.transformer.layers.1.ff_norm.beta"], torch.zeros(SMALL.width))
    assert state["model.model.transformer.rotary_pos_emb.inv_freq"].shape == (SMALL.rotary_dim // 2,)
    other = load_reference_state_dict(DiT(SMALL), state)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    # the constant buffers are optional ...
    lean = {k: v for k, v in state.items() if not k.endswith((".beta", "inv_freq"))}
    load_reference_state_dict(DiT(SMALL), lean)
    # ... but checked
    bad_beta = dict(state, **{"model.model.transformer.layers.0.pre_norm.beta": torch.ones(SMALL.width)})
    with pytest.raises(ValueError, match="pre_norm.beta should be all zero"):
        load_reference_state_dict(DiT(SMALL), bad_beta)
    # every missing and unused key is named
    broken = dict(state)
    del broken["model.model.transformer.layers.1.cross_attn.to_kv.weight"]
    del broken["model.model.to_cond_embed.0.weight"]
    broken["model.model.transformer.layers.2.pre_norm.gamma"] = torch.ones(SMALL.width)
    with pytest.raises(KeyError) as error:
        load_reference_state_dict(DiT(SMALL), broken)
    for key in ("layers.1.cross_attn.to_kv.weight", "to_cond_embed.0.weight", "layers.2.pre_norm.gamma"):
        assert key in str(error.value)
    with pytest.raises(ValueError, match="checkpoint shape"):
        load_reference_state_dict(DiT(DiTConfig(**{**SMALL.__dict__, "cond_dim": 64})), state)


def test_timing_reference_state_dict_round_trip():
    timing = randomised(TimingConditioner(16), seed=9)
    state = timing_to_reference_state_dict(timing)
    assert set(state) == {f"conditioner.conditioners.{which}.embedder.embedding.{p}"
                          for which in ("seconds_start", "seconds_total") for p in ("0.weights", "1.weight", "1.bias")}
    state["conditioner.conditioners.prompt.proj_out.weight"] = torch.zeros(1)  # another conditioner: ignored
    other = load_timing_reference_state_dict(TimingConditioner(16), state)
    assert all(torch.equal(a, b) for a, b in zip(timing.state_dict().values(), other.state_dict().values()))
    del state["conditioner.conditioners.seconds_total.embedder.embedding.1.bias"]
    with pytest.raises(KeyError, match="seconds_total.embedder.embedding.1.bias"):
        load_timing_reference_state_dict(TimingConditioner(16), state)


def test_trace_shapes_records_every_call_in_order_and_removes_its_hooks():
    """trace_shapes: the modules a forward pass calls, parents before children, with the shapes they return;
    Figure 2 (display.plot_dit_architecture) is drawn from these records."""
    import matplotlib
    matplotlib.use("Agg")
    from samod.diffusion import DiffusionModel
    from samod.display import FIGURE2_BOXES, plot_dit_architecture
    from samod.dit import trace_shapes
    torch.manual_seed(0)
    model = DiffusionModel(SMALL).eval()
    x, t, text, _, _ = inputs()
    with torch.no_grad():
        records = trace_shapes(model, lambda: model(x, t, **model.condition(text, torch.zeros(2), torch.tensor([9.0, 20.0]))))
        plain = model(x, t, **model.condition(text, torch.zeros(2), torch.tensor([9.0, 20.0])))
    named = dict(model.named_modules())
    assert all(r["name"] in named and type(named[r["name"]]).__name__ == r["type"] for r in records)
    order = [r["name"] for r in records]
    assert order.index("dit") < order.index("dit.proj_in") < order.index("dit.blocks.0") < order.index("dit.blocks.1")
    assert order.index("dit.blocks.0.self_attn") < order.index("dit.blocks.0.cross_attn") < order.index("dit.blocks.0.mlp")
    by_name = {r["name"]: r for r in records}
    B, L, W, M = x.shape[0], x.shape[-1], SMALL.width, text.shape[1] + 2
    assert by_name["dit"]["output"] == tuple(plain.shape) == tuple(x.shape)
    assert by_name["dit.proj_in"]["output"] == (B, L, W) and by_name["dit.blocks.1"]["output"] == (B, L + 1, W)
    assert by_name["dit.cond_embed"]["output"] == (B, M, SMALL.cond_dim)
    assert by_name["dit.blocks.0.cross_attn"]["inputs"] == [(B, L + 1, W), (B, M, SMALL.cond_dim)]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())  # hooks removed
    fig, boxes = plot_dit_architecture(records)
    assert [b["name"] for b in boxes] == [name for name, *_ in FIGURE2_BOXES]
    assert all(str(by_name[b["name"]]["output"]) in b["label"] for b in boxes)
    with pytest.raises(ValueError, match="trace a DiffusionModel"):
        plot_dit_architecture([r for r in records if r["name"] != "dit.proj_out"])
