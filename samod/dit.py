"""The diffusion transformer (DiT): predicts the velocity v of noisy latents, given text and timing.

Paper 1 §2.2 ("Diffusion-transformer", Figure 2) and Stable Audio Open §2.2: a plain pre-norm transformer over the
latent frames of the snake VAE (patch size 1: one token per latent frame, 21.5 tokens per second),
the DiffusionTransformer of stable-audio-tools ("SAT"). Around the transformer:

- the timestep t in [0, 1] becomes Fourier features [cos, sin](2 pi t W_t), W_t 128 learned frequencies
  ~ N(0, 1), then an MLP (linear 256 -> W, SiLU, linear W -> W);
- the conditioning: text tokens (T5 for SAO, CLAP for SA2) and two timing tokens, seconds_start and
  seconds_total, each v = clamp(s, 0, 512) / 512 embedded as linear([v, sin(2 pi v w), cos(2 pi v w)]);
  the cross-attention context is a bias-free MLP over [text, start, total]; the global token is a
  bias-free MLP of concat(start, total) plus the timestep embedding, prepended to the latent tokens
  (it takes rotary position 0) and dropped from the output;
- a residual 1x1 conv on the way in and out (zero-initialised), bias-free linears D -> W and W -> D.

Each block: x += SelfAttention(LN(x)) with rotary positions; x += CrossAttention(LN(x), context);
x += MLP(LN(x)). LayerNorm has a learned scale and no bias (eps 1e-5). Self-attention uses one fused
bias-free qkv projection and rotates the FIRST HALF of each head's dims (base 10000, "rotate half"
pairs (i, i + R/2), in fp32); cross-attention has fewer key/value heads than query heads (grouped-query
attention: query head h reads key/value head h // (heads / cross_kv_heads)) and no rotary; the MLP is
gated, value * silu(gate) with value the first half of the first linear's output. The attention output
projections and the MLP's last linear start at zero, so every block starts as the identity.

References: stable-audio-tools models/dit.py, transformer.py, conditioners.py (SAT); diffusers'
StableAudioDiTModel (models/transformers/stable_audio_transformer.py) and StableAudioProjectionModel,
which samod matches to float precision (tests/test_dit.py). Two differences from SAT that only show at
toy sizes: SAT rotates max(K / 2, 32) dims per head (32 of 64 at paper size; samod and diffusers rotate
K / 2 at every size), and SAT ties the cross-attention key/value heads to cond_dim / K (12 at paper size;
samod and diffusers take cross_kv_heads from the config).

Names inside samod are readable (blocks, attn_norm, self_attn.qkv, mlp ...); the reference checkpoint
layout (model.model.transformer.layers.<i>.self_attn.to_qkv, ...) is mapped in one place, `reference_key`.

Shapes (glossary, as in the rest of samod): B batch, D latent channels (64), L latent frames, W width,
H heads, K head dim, R = K / 2 rotated dims, S text tokens, E conditioning-token width, N = L + 1 tokens
with the global token, M = S + 2 context tokens. Taught in notebooks/03_dit.ipynb.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from samod.checkpoints import check_keys, count_parameters


@dataclass
class DiTConfig:
    latent_channels: int = 64  # D: channels of the VAE latents
    width: int = 1536  # W: transformer width
    depth: int = 24  # number of blocks
    heads: int = 24  # H: self/cross-attention query heads (head dim K = width // heads)
    cross_kv_heads: int = 12  # key/value heads of cross-attention, each shared by heads // cross_kv_heads queries
    cond_dim: int = 768  # E: width of text and timing tokens (must equal the text conditioner's width)
    mlp_mult: int = 4  # MLP hidden = mlp_mult * width (gated: the first linear is width -> 2 * hidden)
    timestep_features: int = 256  # [cos, sin] Fourier features of t (timestep_features / 2 learned frequencies)
    max_seconds: float = 512.0  # timing tokens clamp seconds to [0, max_seconds] and divide by it
    flash_attention: bool = True  # flash-attn when installed, on CUDA, in fp16/bf16 (else torch SDPA)
    gradient_checkpointing: bool = False  # recompute each block in backward: less memory, one more forward

    def __post_init__(self):
        for name in ("latent_channels", "width", "depth", "heads", "cross_kv_heads", "cond_dim", "mlp_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"DiTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}: each head gets "
                             f"width // heads dims; pick heads among the divisors of the width")
        if self.heads % self.cross_kv_heads:
            raise ValueError(f"heads {self.heads} is not divisible by cross_kv_heads {self.cross_kv_heads}: "
                             f"each key/value head is shared by the same number of query heads")
        if self.head_dim % 4:
            raise ValueError(f"head dim width // heads = {self.head_dim} must be a multiple of 4: rotary "
                             f"embedding rotates the first half of each head in pairs (i, i + K/4)")
        if self.timestep_features % 2 or self.timestep_features < 2:
            raise ValueError(f"timestep_features {self.timestep_features} must be even: half cos, half sin")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")

    @property
    def head_dim(self) -> int:
        """K: dims per attention head (64 at paper size)."""
        return self.width // self.heads

    @property
    def rotary_dim(self) -> int:
        """R: dims of each head that rotary embedding rotates, the first half (32 at paper size)."""
        return self.head_dim // 2

    @staticmethod
    def tiny() -> "DiTConfig":
        # timing tokens up to 64 s: the tiny windows are 30 and 60 s, so 512 s would leave their lengths 1/8 of
        # the range of the timing features, too little for a short run to learn to tell apart
        return DiTConfig(width=128, depth=4, heads=4, cross_kv_heads=2, cond_dim=128, latent_channels=64,
                         max_seconds=64.0)

    @staticmethod
    def small() -> "DiTConfig":
        return DiTConfig(width=768, depth=12, heads=12, cross_kv_heads=6, cond_dim=512, latent_channels=64)

    @staticmethod
    def paper() -> "DiTConfig":
        # paper 1 §2.2 and Table 1 / SAO: 1,056,828,544 parameters in the DiT proper
        return DiTConfig()


# ---------------------------------------------------------------------- timing conditioning

class NumberEmbedding(nn.Module):
    """Seconds (B,) -> a conditioning token (B, E): linear([v, sin(2 pi v w), cos(2 pi v w)]), v = s / max.

    SAT's NumberConditioner(min 0, max 512) with its NumberEmbedder: 128 learned frequencies w ~ N(0, 1).
    """

    def __init__(self, cond_dim: int, max_seconds: float = 512.0, frequencies: int = 128):
        super().__init__()
        self.max_seconds = max_seconds
        self.freqs = nn.Parameter(torch.randn(frequencies))  # w
        self.linear = nn.Linear(2 * frequencies + 1, cond_dim)  # 257 -> E

    def forward(self, seconds: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, E)
        v = seconds.clamp(0, self.max_seconds) / self.max_seconds  # (B,) in [0, 1]
        v = v.to(self.freqs.dtype)
        angles = v[:, None] * self.freqs[None] * 2 * math.pi  # (B, 128)
        return self.linear(torch.cat([v[:, None], angles.sin(), angles.cos()], dim=-1))  # (B, 257) -> (B, E)


class TimingConditioner(nn.Module):
    """seconds_start and seconds_total (B,) -> their conditioning tokens, each (B, 1, E) (paper 1 §2.2-2.3)."""

    def __init__(self, cond_dim: int, max_seconds: float = 512.0):
        super().__init__()
        self.seconds_start = NumberEmbedding(cond_dim, max_seconds)
        self.seconds_total = NumberEmbedding(cond_dim, max_seconds)

    def forward(self, seconds_start: torch.Tensor | Sequence[float],
                seconds_total: torch.Tensor | Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.seconds_start.freqs.device
        start = torch.as_tensor(seconds_start, dtype=torch.float32, device=device).reshape(-1)  # (B,)
        total = torch.as_tensor(seconds_total, dtype=torch.float32, device=device).reshape(-1)  # (B,)
        if start.shape != total.shape:
            raise ValueError(f"seconds_start and seconds_total need one value per item each, got "
                             f"{tuple(start.shape)} and {tuple(total.shape)}")
        return self.seconds_start(start)[:, None], self.seconds_total(total)[:, None]  # (B, 1, E) each


def dit_inputs(text_tokens: torch.Tensor, start_token: torch.Tensor,
               total_token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioner outputs -> (context (B, S + 2, E), global_cond (B, 2 E)), as SAT builds them for SAO.

    The context for cross-attention is [text tokens, start, total]; the global conditioning is the two
    timing tokens side by side (SAO's global_cond_ids: seconds_start, seconds_total).
    """
    b, e = text_tokens.shape[0], text_tokens.shape[-1]
    if text_tokens.ndim != 3 or start_token.shape != (b, 1, e) or total_token.shape != (b, 1, e):
        raise ValueError(f"expected text tokens (B, S, E) and timing tokens (B, 1, E), got "
                         f"{tuple(text_tokens.shape)}, {tuple(start_token.shape)}, {tuple(total_token.shape)}")
    context = torch.cat([text_tokens, start_token, total_token], dim=1)  # (B, S + 2, E)
    global_cond = torch.cat([start_token, total_token], dim=-1).squeeze(1)  # (B, 1, 2E) -> (B, 2E)
    return context, global_cond


# ---------------------------------------------------------------------- attention

def rotary_frequencies(dim: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """(dim / 2,) fp32: 1 / base^(2i / dim), the angle per position of pair i (SAT's inv_freq)."""
    return 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)


def rotary_embedding(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles (N, dim / 2) in fp32: theta_{n,i} = n / base^(2i / dim) for the pairs i < dim / 2."""
    inv_freq = rotary_frequencies(dim, base, positions.device)  # (dim / 2,)
    return positions.to(torch.float32)[:, None] * inv_freq[None]  # (N, 1) * (1, dim / 2) -> (N, dim / 2)


def apply_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate the first R = 2 * freqs.shape[-1] dims of x (..., N, K) by the angles freqs (N, R / 2).

    "Rotate half" layout: dims i and i + R/2 form a pair, turned by theta_{n,i} in fp32; dims R.. pass
    through. Then q_m . k_n depends on the positions only through m - n (notebooks/03_dit.ipynb).
    """
    half = freqs.shape[-1]
    cos, sin = freqs.cos(), freqs.sin()  # (N, R / 2)
    x1, x2 = x[..., :half].float(), x[..., half:2 * half].float()  # (..., N, R / 2) each
    rotated = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]  # the 2-D rotation of each pair
    return torch.cat([r.to(x.dtype) for r in rotated] + [x[..., 2 * half:]], dim=-1)  # (..., N, K)


@functools.cache
def _flash_attn():
    """flash_attn.flash_attn_func when flash-attn is installed, else None (imported on first use)."""
    try:
        from flash_attn import flash_attn_func  # flash-attn: optional, GPU only
    except ImportError:
        return None
    return flash_attn_func


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, flash: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(K)) v with q (B, H, N, K), k and v (B, H, M, K) -> (B, H, N, K). No mask.

    flash=True uses flash-attn where it can run (installed, CUDA, fp16/bf16); otherwise torch's
    scaled_dot_product_attention (which picks its own fused kernel).
    """
    fa = _flash_attn() if flash and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) else None
    if fa is not None:
        q, k, v = (rearrange(t, "b h n k -> b n h k") for t in (q, k, v))  # flash-attn's layout
        return rearrange(fa(q, k, v), "b n h k -> b h n k")
    return F.scaled_dot_product_attention(q, k, v)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the N tokens, rotary positions on q and k."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads, self.flash = cfg.heads, cfg.flash_attention
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)  # fused q, k, v
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)
        nn.init.zeros_(self.out.weight)  # the block starts as the identity

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:  # (B, N, W) -> (B, N, W)
        qkv = rearrange(self.qkv(x), "b n (three h k) -> three b h n k", three=3, h=self.heads)  # 3 x (B, H, N, K)
        qk = apply_rotary(qkv[:2], freqs)  # (2, B, H, N, K): q and k rotate alike, v does not
        out = attention(qk[0], qk[1], qkv[2], self.flash)  # (B, H, N, K)
        return self.out(rearrange(out, "b h n k -> b n (h k)"))  # (B, N, W)


class CrossAttention(nn.Module):
    """Latent tokens attend to the M context tokens; grouped-query: fewer key/value heads, no rotary."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads, self.kv_heads, self.flash = cfg.heads, cfg.cross_kv_heads, cfg.flash_attention
        self.q = nn.Linear(cfg.width, cfg.width, bias=False)
        self.kv = nn.Linear(cfg.cond_dim, 2 * cfg.cross_kv_heads * cfg.head_dim, bias=False)  # fused k, v
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # (B, N, W), (B, M, E) -> (B, N, W)
        q = rearrange(self.q(x), "b n (h k) -> b h n k", h=self.heads)  # (B, H, N, K)
        k, v = rearrange(self.kv(context), "b m (two h k) -> two b h m k", two=2, h=self.kv_heads)  # (B, Hkv, M, K)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # query head h reads h // group
        out = attention(q, k, v, self.flash)  # (B, H, N, K)
        return self.out(rearrange(out, "b h n k -> b n (h k)"))  # (B, N, W)


class GatedMLP(nn.Module):
    """Linear W -> 2 hidden, value * silu(gate) (value = first half), linear hidden -> W (SwiGLU)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        hidden = cfg.mlp_mult * cfg.width
        self.proj_in = nn.Linear(cfg.width, 2 * hidden)
        self.proj_out = nn.Linear(hidden, cfg.width)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, W) -> (B, N, W)
        value, gate = self.proj_in(x).chunk(2, dim=-1)  # (B, N, hidden) each
        return self.proj_out(value * F.silu(gate))


class DiTBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention, gated MLP, each added to the residual stream."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.width, eps=1e-5, bias=False)
        self.self_attn = SelfAttention(cfg)
        self.cross_norm = nn.LayerNorm(cfg.width, eps=1e-5, bias=False)
        self.cross_attn = CrossAttention(cfg)
        self.mlp_norm = nn.LayerNorm(cfg.width, eps=1e-5, bias=False)
        self.mlp = GatedMLP(cfg)

    def forward(self, x: torch.Tensor, context: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.attn_norm(x), freqs)  # (B, N, W)
        x = x + self.cross_attn(self.cross_norm(x), context)
        return x + self.mlp(self.mlp_norm(x))


def mlp(d_in: int, d_out: int, bias: bool) -> nn.Sequential:
    """linear d_in -> d_out, SiLU, linear d_out -> d_out: the embedding MLPs around the transformer."""
    return nn.Sequential(nn.Linear(d_in, d_out, bias=bias), nn.SiLU(), nn.Linear(d_out, d_out, bias=bias))


# ---------------------------------------------------------------------- the model

class DiT(nn.Module):
    """v = DiT(x_t, t, context, global_cond): (B, D, L) noisy latents -> (B, D, L) predicted velocity."""

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        cfg = self.config = config or DiTConfig()
        self.time_freqs = nn.Parameter(torch.randn(cfg.timestep_features // 2, 1))  # W_t (128, 1), ~ N(0, 1)
        self.time_embed = mlp(cfg.timestep_features, cfg.width, bias=True)  # 256 -> W -> W
        self.cond_embed = mlp(cfg.cond_dim, cfg.cond_dim, bias=False)  # context tokens E -> E -> E
        self.global_embed = mlp(2 * cfg.cond_dim, cfg.width, bias=False)  # 2E -> W -> W
        self.pre_conv = nn.Conv1d(cfg.latent_channels, cfg.latent_channels, 1, bias=False)
        self.proj_in = nn.Linear(cfg.latent_channels, cfg.width, bias=False)
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.proj_out = nn.Linear(cfg.width, cfg.latent_channels, bias=False)
        self.post_conv = nn.Conv1d(cfg.latent_channels, cfg.latent_channels, 1, bias=False)
        nn.init.zeros_(self.pre_conv.weight)  # both residual convs start as the identity
        nn.init.zeros_(self.post_conv.weight)

    def _check_inputs(self, x, t, context, global_cond) -> torch.Tensor:
        c, e = self.config.latent_channels, self.config.cond_dim
        if x.ndim != 3 or x.shape[1] != c:
            raise ValueError(f"expected latents of shape (batch, {c}, frames) (DiTConfig.latent_channels), "
                             f"got {tuple(x.shape)}")
        b = x.shape[0]
        t = t.reshape(1).expand(b) if t.ndim == 0 else t
        if t.shape != (b,):
            raise ValueError(f"expected one timestep per item, shape ({b},) or a scalar, got {tuple(t.shape)}")
        if context.ndim != 3 or context.shape[0] != b or context.shape[2] != e:
            raise ValueError(f"expected context tokens of shape ({b}, tokens, {e}): cond_dim {e} must equal the "
                             f"text conditioner's width; got {tuple(context.shape)}")
        if global_cond.shape != (b, 2 * e):
            raise ValueError(f"expected global_cond of shape ({b}, {2 * e}): the start and total timing tokens "
                             f"side by side (see dit_inputs); got {tuple(global_cond.shape)}")
        return t

    def timestep_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """t (B,) -> (B, W): MLP([cos, sin](2 pi t W_t)), the features computed in fp32."""
        angles = (2 * math.pi * t.float())[:, None] * self.time_freqs.float().T  # (B, 1) * (1, 128) -> (B, 128)
        features = torch.cat([angles.cos(), angles.sin()], dim=-1)  # (B, 256)
        return self.time_embed(features.to(self.time_freqs.dtype))  # (B, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                global_cond: torch.Tensor) -> torch.Tensor:
        t = self._check_inputs(x, t, context, global_cond)
        context = self.cond_embed(context)  # (B, M, E)
        global_token = self.global_embed(global_cond) + self.timestep_embedding(t)  # (B, W)

        x = self.pre_conv(x) + x  # (B, D, L)
        h = self.proj_in(rearrange(x, "b c l -> b l c"))  # (B, L, W)
        h = torch.cat([global_token[:, None], h], dim=1)  # (B, N = L + 1, W): global token at position 0
        freqs = rotary_embedding(torch.arange(h.shape[1], device=h.device), self.config.rotary_dim)  # (N, R / 2)
        for block in self.blocks:
            if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(block, h, context, freqs, use_reentrant=False)  # recomputed in backward
            else:
                h = block(h, context, freqs)  # (B, N, W)
        out = rearrange(self.proj_out(h[:, 1:]), "b l c -> b c l")  # drop the global token: (B, D, L)
        return self.post_conv(out) + out

    def num_parameters(self) -> int:
        return count_parameters(self)


def parameter_table(dit: DiT) -> dict[str, int]:
    """Parameters per part of the DiT (notebook 03's table); the values sum to dit.num_parameters()."""
    count = count_parameters
    blocks = dit.blocks
    return {
        "timestep embedding (W, MLP)": count(dit.time_freqs, dit.time_embed),
        "conditioning MLPs (context, global)": count(dit.cond_embed, dit.global_embed),
        "input/output (1x1 convs, projections)": count(dit.pre_conv, dit.proj_in, dit.proj_out, dit.post_conv),
        "blocks: self-attention": count(*(b.self_attn for b in blocks)),
        "blocks: cross-attention": count(*(b.cross_attn for b in blocks)),
        "blocks: gated MLP": count(*(b.mlp for b in blocks)),
        "blocks: LayerNorm scales": count(*(n for b in blocks for n in (b.attn_norm, b.cross_norm, b.mlp_norm))),
    }


def trace_shapes(model: nn.Module, run: Callable[[], object]) -> list[dict]:
    """The sub-modules of `model` that `run()` calls, in call order, with the shapes they take and return.

    Forward hooks on every named sub-module record {"name": its name in model.named_modules(), "type": its
    class, "inputs": shapes of its tensor arguments, "output": the shape it returns}. Notebook 03 draws paper 1's
    Figure 2 from these records (`samod.display.plot_dit_architecture`), so the figure follows the code.
    """
    records: list[dict] = []
    handles = []

    def shape(value):
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        if isinstance(value, (tuple, list)):
            return [shape(v) for v in value]
        return None

    def before(name):
        def hook(module, args):
            records.append({"name": name, "type": type(module).__name__, "inputs": [shape(a) for a in args
                                                                                      if shape(a) is not None]})
            module._trace_index = len(records) - 1  # the record its forward hook completes
        return hook

    def after(module, args, output):
        records[module._trace_index]["output"] = shape(output)

    for name, module in model.named_modules():
        if name:  # the model itself is the caller, not a part
            handles += [module.register_forward_pre_hook(before(name)), module.register_forward_hook(after)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
        for module in model.modules():
            module.__dict__.pop("_trace_index", None)
    return records


# ---------------------------------------------------------------------- reference checkpoint layout

_TOP_KEYS = {  # samod name -> SAT name (under model.model.)
    "time_freqs": "timestep_features.weight", "time_embed": "to_timestep_embed", "cond_embed": "to_cond_embed",
    "global_embed": "to_global_embed", "pre_conv": "preprocess_conv", "post_conv": "postprocess_conv",
    "proj_in": "transformer.project_in", "proj_out": "transformer.project_out",
}
_BLOCK_KEYS = {  # inside blocks.N -> inside transformer.layers.N
    "attn_norm.weight": "pre_norm.gamma", "self_attn.qkv": "self_attn.to_qkv", "self_attn.out": "self_attn.to_out",
    "cross_norm.weight": "cross_attend_norm.gamma", "cross_attn.q": "cross_attn.to_q",
    "cross_attn.kv": "cross_attn.to_kv", "cross_attn.out": "cross_attn.to_out",
    "mlp_norm.weight": "ff_norm.gamma", "mlp.proj_in": "ff.ff.0.proj", "mlp.proj_out": "ff.ff.2",
}


def reference_key(name: str) -> str:
    """samod DiT parameter name -> the stable-audio-tools name (without the `model.model.` prefix).

    time_freqs -> timestep_features.weight; time_embed / cond_embed / global_embed -> to_*_embed;
    pre_conv / post_conv -> preprocess_conv / postprocess_conv; proj_in / proj_out -> transformer.project_*;
    blocks.N.{attn_norm, self_attn.qkv, self_attn.out, cross_norm, cross_attn.q, cross_attn.kv, cross_attn.out,
    mlp_norm, mlp.proj_in, mlp.proj_out} -> transformer.layers.N.{pre_norm.gamma, self_attn.to_qkv,
    self_attn.to_out, cross_attend_norm.gamma, cross_attn.to_q, cross_attn.to_kv, cross_attn.to_out,
    ff_norm.gamma, ff.ff.0.proj, ff.ff.2}.
    """
    if name.startswith("blocks."):
        _, n, rest = name.split(".", 2)
        for ours, theirs in _BLOCK_KEYS.items():
            if rest == ours or rest.startswith(ours + "."):
                return f"transformer.layers.{n}.{theirs}{rest[len(ours):]}"
    for ours, theirs in _TOP_KEYS.items():
        if name == ours or name.startswith(ours + "."):
            return theirs + name[len(ours):]
    raise KeyError(f"{name} is not a DiT parameter name")


def _reference_constants(dit: DiT) -> dict[str, torch.Tensor]:
    """Buffers SAT stores that carry nothing learned: LayerNorm betas (zeros) and the rotary frequencies."""
    cfg, weight = dit.config, dit.proj_in.weight
    consts = {f"transformer.layers.{i}.{norm}.beta": weight.new_zeros(cfg.width)  # one tensor each (safetensors)
              for i in range(cfg.depth) for norm in ("pre_norm", "cross_attend_norm", "ff_norm")}
    consts["transformer.rotary_pos_emb.inv_freq"] = rotary_frequencies(cfg.rotary_dim, device=weight.device)
    return consts


def _load(module: nn.Module, state: dict[str, torch.Tensor], names: dict[str, str]) -> None:
    own = module.state_dict()
    for ref, k in names.items():
        if state[ref].shape != own[k].shape:
            raise ValueError(f"{ref}: checkpoint shape {tuple(state[ref].shape)}, model expects "
                             f"{tuple(own[k].shape)}; is the config right?")
    module.load_state_dict({k: state[ref] for ref, k in names.items()})


def to_reference_state_dict(dit: DiT, prefix: str = "model.model.") -> dict[str, torch.Tensor]:
    """samod DiT weights under the reference checkpoint's names, with SAT's zero betas and inv_freq."""
    state = {prefix + reference_key(k): v for k, v in dit.state_dict().items()}
    state.update({prefix + k: v for k, v in _reference_constants(dit).items()})
    return state


def load_reference_state_dict(dit: DiT, state: dict[str, torch.Tensor], prefix: str = "model.model.") -> DiT:
    """Load DiT weights stored under the reference names; missing and unused keys are counted and named (KeyError).

    The LayerNorm betas and rotary inv_freq are accepted when present and checked (zero; samod's rotary).
    """
    names = {prefix + reference_key(k): k for k in dit.state_dict()}
    consts = {prefix + k: v for k, v in _reference_constants(dit).items()}
    theirs = {k for k in state if k.startswith(prefix)}
    check_keys(set(names) | set(consts), theirs, f"DiTConfig {dit.config}", optional=consts)
    for key in sorted(theirs & set(consts)):
        ours = consts[key]
        if state[key].shape != ours.shape or not torch.allclose(state[key].to(ours), ours):
            expected = "all zero (LayerNorm without bias)" if key.endswith(".beta") else \
                f"the rotary frequencies of the first K / 2 = {dit.config.rotary_dim} dims of each head"
            raise ValueError(f"{key} should be {expected}; samod cannot represent this checkpoint")
    _load(dit, state, names)
    return dit


def timing_reference_key(name: str) -> str:
    """TimingConditioner name -> SAT name: seconds_start.freqs -> seconds_start.embedder.embedding.0.weights,
    seconds_start.linear.{weight, bias} -> seconds_start.embedder.embedding.1.{weight, bias} (same for total)."""
    which, param = name.split(".", 1)
    return {"freqs": f"{which}.embedder.embedding.0.weights", "linear.weight": f"{which}.embedder.embedding.1.weight",
            "linear.bias": f"{which}.embedder.embedding.1.bias"}[param]


def timing_to_reference_state_dict(timing: TimingConditioner,
                                   prefix: str = "conditioner.conditioners.") -> dict[str, torch.Tensor]:
    return {prefix + timing_reference_key(k): v for k, v in timing.state_dict().items()}


def load_timing_reference_state_dict(timing: TimingConditioner, state: dict[str, torch.Tensor],
                                     prefix: str = "conditioner.conditioners.") -> TimingConditioner:
    """Load seconds_start / seconds_total weights; keys of other conditioners (the prompt's) are left alone."""
    names = {prefix + timing_reference_key(k): k for k in timing.state_dict()}
    theirs = {k for k in state if k.startswith((prefix + "seconds_start.", prefix + "seconds_total."))}
    check_keys(names, theirs, "the timing conditioner")
    _load(timing, state, names)
    return timing
