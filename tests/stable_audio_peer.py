"""diffusers' Stable Audio classes as a test-only peer: their weights written back in stable-audio-tools' layout.

diffusers documents how it converts the released Stable Audio Open checkpoint (scripts/convert_stable_audio.py:
`model.model.*` -> StableAudioDiTModel, `conditioner.conditioners.*` -> StableAudioProjectionModel,
`pretransform.model.*` -> AutoencoderOobleck). The functions here invert that conversion, so that
diffusers' models with random weights become a checkpoint in exactly the released layout (SAT names,
fused qkv / kv projections, LayerNorm gamma / beta, timestep_features (128, 1), SnakeBeta logs (C,),
weight_g / weight_v, the rotary `inv_freq` buffer) for samod to load and be compared with.

Not a test module (pytest collects test_*.py only); used by test_dit.py, test_autoencoder.py and
test_pretrained.py. Each function skips the calling test when diffusers is absent only where it imports it.
"""
from __future__ import annotations

import re

import torch


def randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Every parameter drawn at random, the zero-initialised ones included (LayerNorm scales around 1,
    learned Fourier frequencies ~ N(0, 1))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            p.copy_(1 + noise if re.search(r"norm\d?\.weight$", name) else noise)
            if "freqs" in name or "time_proj" in name or name.endswith(".weights"):
                p.mul_(1 / std)  # the learned Fourier frequencies are ~ N(0, 1)
    return model


def dit_to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' StableAudioDiTModel state dict -> stable-audio-tools names (inverse of convert_stable_audio.py).

    Separate q/k/v projections are fused back (to_qkv = cat(q, k, v), to_kv = cat(k, v) along the outputs),
    LayerNorm weight/bias become gamma/beta, timestep_features.weight gets back its (128, 1) shape.
    """
    top = {"time_proj": "timestep_features", "timestep_proj": "to_timestep_embed", "global_proj": "to_global_embed",
           "cross_attention_proj": "to_cond_embed", "proj_in": "transformer.project_in",
           "proj_out": "transformer.project_out", "preprocess_conv": "preprocess_conv",
           "postprocess_conv": "postprocess_conv"}
    block = {"norm1": "pre_norm", "norm2": "cross_attend_norm", "norm3": "ff_norm", "attn1": "self_attn",
             "attn2": "cross_attn", "ff.net.0.proj": "ff.ff.0.proj", "ff.net.2": "ff.ff.2"}
    out = {}
    for key, value in state.items():
        m = re.match(r"transformer_blocks\.(\d+)\.(.*)", key)
        if not m:
            name, param = key.split(".", 1)
            out[f"{top[name]}.{param}"] = value[:, None] if name == "time_proj" else value
            continue
        n, rest = m.groups()
        for ours, theirs in block.items():
            rest = re.sub(rf"^{re.escape(ours)}\b", theirs, rest)
        rest = re.sub(r"norm\.weight$", "norm.gamma", rest)
        rest = re.sub(r"norm\.bias$", "norm.beta", rest).replace("to_out.0", "to_out")
        out[f"transformer.layers.{n}.{rest}"] = value
    for key in [k for k in out if k.endswith(".to_q.weight") and "self_attn" in k]:  # fuse q, k, v
        stem = key[:-len("to_q.weight")]
        out[stem + "to_qkv.weight"] = torch.cat([out.pop(stem + f"to_{p}.weight") for p in "qkv"], dim=0)
    for key in [k for k in out if k.endswith(".to_k.weight") and "cross_attn" in k]:  # fuse k, v
        stem = key[:-len("to_k.weight")]
        out[stem + "to_kv.weight"] = torch.cat([out.pop(stem + f"to_{p}.weight") for p in "kv"], dim=0)
    return out


def oobleck_to_reference(key: str, n: int) -> str:
    """diffusers' AutoencoderOobleck names -> stable-audio-tools names (the inverse of diffusers' conversion).

    `n` is the number of encoder/decoder blocks.
    """
    side, rest = key.split(".", 1)
    m = re.match(r"block\.(\d+)\.(.*)", rest)
    if not m:
        top = {"conv1": "layers.0", "snake1": f"layers.{n + 1}", "conv2": f"layers.{n + 2}"}
        name, param = rest.split(".", 1)
        return f"{side}.{top[name]}.{param}"
    block, inner = int(m.group(1)) + 1, m.group(2)
    r = re.match(r"res_unit(\d)\.(snake1|conv1|snake2|conv2)\.(.*)", inner)
    if r:
        j = int(r.group(1)) - 1 + (0 if side == "encoder" else 2)
        layer = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}[r.group(2)]
        return f"{side}.layers.{block}.layers.{j}.layers.{layer}.{r.group(3)}"
    name, param = inner.split(".", 1)
    layer = {"encoder": {"snake1": 3, "conv1": 4}, "decoder": {"snake1": 0, "conv_t1": 1}}[side][name]
    return f"{side}.layers.{block}.layers.{layer}.{param}"


def projection_to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """StableAudioProjectionModel (its number conditioners) -> SAT's seconds_start / seconds_total names."""
    out = {}
    for key, value in state.items():
        if key.startswith("text_projection"):
            continue  # nn.Identity when T5's width equals cond_dim (SAO): nothing stored
        out[key.replace("start_number_conditioner", "seconds_start").replace("end_number_conditioner", "seconds_total")
               .replace("time_positional_embedding", "embedder.embedding")] = value
    return out


def stable_audio_checkpoint(dit, projection, vae) -> dict[str, torch.Tensor]:
    """The three diffusers models -> one state dict in the released SAO layout (model.safetensors).

    Adds what diffusers drops: the rotary `inv_freq` buffer of SAT's transformer (max(K / 2, 32) dims per
    head, base 10000) and SnakeBeta logs back to shape (C,).
    """
    n = len(vae.config.downsampling_ratios)
    state = {"model.model." + k: v for k, v in dit_to_reference(dit.state_dict()).items()}
    head_dim = dit.config.attention_head_dim
    rotary = max(head_dim // 2, 32)
    state["model.model.transformer.rotary_pos_emb.inv_freq"] = 1.0 / 10000 ** (
        torch.arange(0, rotary, 2).float() / rotary)
    timing = projection_to_reference(projection.state_dict())
    state.update({"conditioner.conditioners." + k: v for k, v in timing.items()})
    for key, value in vae.state_dict().items():
        ref = oobleck_to_reference(key, n)
        state["pretransform.model." + ref] = value.reshape(-1) if re.search(r"\.(alpha|beta)$", ref) else value
    return {k: v.detach().clone().contiguous() for k, v in state.items()}
