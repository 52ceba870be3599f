"""The snake VAE: 44.1 kHz stereo audio <-> 64-channel latents at 21.5 frames per second.

Paper 1 §2.1 (and Stable Audio Open §2.1): a fully-convolutional variational autoencoder, the
"Oobleck" architecture of stable-audio-tools, compresses the waveform 2048 times in time so that the
diffusion transformer can see 285 s of music as 6144 latent frames. Building blocks:

- SnakeBeta activations, y = x + sin^2(exp(a) x) / (exp(b) + 1e-9), one learned (log-scale) a and b
  per channel: periodic, so a stack of them represents periodic signals (audio) with few parameters;
- residual units: x + conv1x1(snake(conv7_dilated(snake(x)))) at dilations 1, 3 and 9;
- encoder blocks: 3 residual units, snake, then a strided conv (kernel 2s, stride s) that divides time
  by s; decoder blocks mirror them with a transposed conv that multiplies time by s;
- weight normalisation on every convolution (the reference checkpoints hold weight_g / weight_v);
- the VAE bottleneck: the encoder's 2 x latent channels are a mean and a scale; std = softplus(scale)
  + 1e-4; latents = mean + std * noise; the KL term is sum over channels of (mean^2 + std^2 - log std^2
  - 1), averaged over batch and time (no 1/2, as the reference);
- no tanh at the output (Stable Audio 2 removed it).

Latent-rate arithmetic: strides 2*4*4*8*8 = 2048, so 44100 / 2048 = 21.53 latent frames per second;
with 64 latent channels that is 1378 numbers per second for 88200 stereo samples: 64x compression.

Long audio is encoded and decoded in overlapping chunks (spec: 128 latents, overlap 32, 16 cropped at
each interior edge, pasted hard): the decoder sees about +-10 latents, so the result equals one pass.

Names inside samod are readable (stem, blocks, res_units, act, down/up, proj); the reference
checkpoint layout (stable-audio-tools: encoder.layers.N..., weight_g / weight_v) is mapped in one place,
`reference_key`, used by `to_reference_state_dict` / `load_reference_state_dict`.

Shapes (glossary): B batch, A audio channels (2), T samples, L latent frames (T / 2048),
D latent channels, C width. Taught in notebooks/01_autoencoder.ipynb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from samod.checkpoints import check_keys, count_parameters
from samod.cpu import in_pieces, snake_beta


@dataclass
class AutoencoderConfig:
    channels: int = 128  # C: width of the first encoder stage (stage i has C * channel_mults[i])
    channel_mults: tuple[int, ...] = (1, 2, 4, 8, 16)  # width multipliers after each block
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)  # time downsampling of each block (product 2048)
    latent_dim: int = 64  # D: latent channels (the encoder outputs 2 D: mean and scale)
    audio_channels: int = 2  # A: stereo
    sample_rate: int = 44100  # Hz
    chunk_latents: int = 128  # chunked encode/decode: latent frames per chunk
    chunk_overlap: int = 32  # latent frames shared by neighbouring chunks (half cropped on each side)

    @property
    def downsampling(self) -> int:
        """Samples per latent frame: the product of the strides (2048)."""
        return math.prod(self.strides)

    @property
    def latent_rate(self) -> float:
        """Latent frames per second (21.53 Hz at 44.1 kHz)."""
        return self.sample_rate / self.downsampling

    @staticmethod
    def tiny() -> "AutoencoderConfig":
        # narrow but same depth, strides and latent size: 2048x at 44.1 kHz, 64 channels
        return AutoencoderConfig(channels=16)

    @staticmethod
    def small() -> "AutoencoderConfig":
        return AutoencoderConfig(channels=64)

    @staticmethod
    def paper() -> "AutoencoderConfig":
        # paper 1 §2.1 / SAO: 156,112,514 parameters
        return AutoencoderConfig()


class SnakeBeta(nn.Module):
    """y = x + sin^2(alpha x) / beta, with alpha = exp(a), beta = exp(b) learned per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))  # a = log alpha, initialised to 0 (alpha = 1)
        self.beta = nn.Parameter(torch.zeros(channels))  # b = log beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        alpha = self.alpha.exp()[None, :, None]  # (1, C, 1)
        inv_beta = (self.beta.exp() + 1e-9).reciprocal()[None, :, None]  # (1, C, 1): 1 / beta
        return snake_beta(x, alpha, inv_beta)  # x + inv_beta * sin^2(alpha x) (in place without autograd)


def wn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
            bias: bool = True) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation,
                                 bias=bias))


class ResidualUnit(nn.Module):
    """x + conv1x1(snake(conv7_dilated(snake(x)))): same width, same length."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.act1 = SnakeBeta(channels)
        self.conv1 = wn_conv(channels, channels, 7, dilation=dilation, padding=3 * dilation)
        self.act2 = SnakeBeta(channels)
        self.conv2 = wn_conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class EncoderBlock(nn.Module):
    """Residual units at dilations 1, 3, 9, snake, strided conv: (B, C_in, T) -> (B, C_out, T / s)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.res_units = nn.ModuleList([ResidualUnit(in_ch, d) for d in (1, 3, 9)])
        self.act = SnakeBeta(in_ch)
        self.down = wn_conv(in_ch, out_ch, 2 * stride, stride=stride, padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.res_units:
            x = unit(x)  # (B, C_in, T)
        return self.down(self.act(x))  # (B, C_out, T / s)


class DecoderBlock(nn.Module):
    """Snake, transposed conv, residual units at dilations 1, 3, 9: (B, C_in, L) -> (B, C_out, L * s)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.act = SnakeBeta(in_ch)
        self.up = weight_norm(nn.ConvTranspose1d(in_ch, out_ch, 2 * stride, stride=stride,
                                                 padding=math.ceil(stride / 2)))
        self.res_units = nn.ModuleList([ResidualUnit(out_ch, d) for d in (1, 3, 9)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.act(x))  # (B, C_out, L * s)
        for unit in self.res_units:
            x = unit(x)
        return x


class Encoder(nn.Module):
    """(B, A, T) audio -> (B, 2 D, T / 2048): mean and scale of the latent distribution."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths = [cfg.channels * m for m in (1, *cfg.channel_mults)]  # paper: 128, 128, 256, 512, 1024, 2048
        self.stem = wn_conv(cfg.audio_channels, widths[0], 7, padding=3)
        self.blocks = nn.ModuleList([EncoderBlock(widths[i], widths[i + 1], s) for i, s in enumerate(cfg.strides)])
        self.act = SnakeBeta(widths[-1])
        self.proj = wn_conv(widths[-1], 2 * cfg.latent_dim, 3, padding=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.stem(audio)  # (B, C, T)
        for block in self.blocks:
            x = block(x)  # time / stride, width * 2 (or as channel_mults say)
        return self.proj(self.act(x))  # (B, 2 D, L)


class Decoder(nn.Module):
    """(B, D, L) latents -> (B, A, L * 2048) audio; no output tanh."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths = [cfg.channels * m for m in (1, *cfg.channel_mults)]
        self.stem = wn_conv(cfg.latent_dim, widths[-1], 7, padding=3)
        n = len(cfg.strides)
        self.blocks = nn.ModuleList([DecoderBlock(widths[i + 1], widths[i], cfg.strides[i])
                                     for i in reversed(range(n))])
        self.act = SnakeBeta(widths[0])
        self.proj = wn_conv(widths[0], cfg.audio_channels, 7, padding=3, bias=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.stem(latents)  # (B, 16 C, L)
        for block in self.blocks:
            x = block(x)  # time * stride, width / 2
        return self.proj(self.act(x))  # (B, A, T)


@dataclass
class AutoencoderOutput:
    reconstruction: torch.Tensor  # (B, A, T)
    latents: torch.Tensor  # (B, D, L): a sample of the posterior
    mean: torch.Tensor  # (B, D, L)
    std: torch.Tensor  # (B, D, L)
    kl: torch.Tensor  # scalar


def vae_bottleneck(h: torch.Tensor, generator: torch.Generator | None = None):
    """Encoder output (B, 2 D, L) -> (latents, mean, std, kl), each latent drawn N(mean, std^2)."""
    mean, scale = h.float().chunk(2, dim=1)  # (B, D, L) each; float32 under bf16 autocast too (log of the variance)
    std = F.softplus(scale) + 1e-4  # (B, D, L)
    var = std * std
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    latents = mean + std * noise  # reparameterisation: gradients reach mean and std
    kl = (mean * mean + var - torch.log(var) - 1).sum(dim=1).mean()  # sum over D, mean over B and L
    return latents, mean, std, kl


class Autoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    # ------------------------------------------------------------------ input checks and padding
    def _check_audio(self, audio: torch.Tensor) -> torch.Tensor:
        a = self.config.audio_channels
        if audio.ndim == 2:
            audio = audio[None]  # (1, A, T)
        if audio.ndim != 3 or audio.shape[1] != a:
            raise ValueError(f"expected audio of shape (batch, {a}, samples) or ({a}, samples), got "
                             f"{tuple(audio.shape)}; samod.audio.to_stereo makes stereo from mono or multichannel")
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or inf samples; clean the input (e.g. torch.nan_to_num)")
        return audio

    def pad(self, audio: torch.Tensor) -> torch.Tensor:
        """Zero-pad the end of (B, A, T) audio to a multiple of 2048 samples."""
        n = self.config.downsampling
        return F.pad(audio, (0, (-audio.shape[-1]) % n))

    # ------------------------------------------------------------------ the model
    def encode_distribution(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, A, T) -> (B, 2 D, ceil(T / 2048)): the encoder's raw output (mean and scale)."""
        return self.encoder(self.pad(self._check_audio(audio)))

    def encode(self, audio: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor:
        """(B, A, T) -> (B, D, L) latents: a posterior sample (as the reference), or its mean."""
        latents, mean, _, _ = vae_bottleneck(self.encode_distribution(audio), generator)
        return latents if sample else mean

    def decode(self, latents: torch.Tensor, samples: int | None = None) -> torch.Tensor:
        """(B, D, L) -> (B, A, L * 2048) audio, cut to `samples` when given (to undo `pad`)."""
        d = self.config.latent_dim
        if latents.ndim != 3 or latents.shape[1] != d:
            raise ValueError(f"expected latents of shape (batch, {d}, frames), got {tuple(latents.shape)}")
        return self.decoder(latents)[..., :samples]

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> AutoencoderOutput:
        audio = self._check_audio(audio)
        latents, mean, std, kl = vae_bottleneck(self.encode_distribution(audio), generator)
        reconstruction = self.decode(latents, audio.shape[-1])  # (B, A, T): padding trimmed
        return AutoencoderOutput(reconstruction, latents, mean, std, kl)

    # ------------------------------------------------------------------ long audio in chunks
    def _chunks(self, frames: int) -> list[tuple[int, int, int]]:
        """(start, keep_from, keep_to) in latent frames for chunked processing of `frames` frames."""
        size, overlap = self.config.chunk_latents, self.config.chunk_overlap
        if frames <= size:
            return [(0, 0, frames)]
        hop = size - overlap
        starts = list(range(0, frames - size + 1, hop))
        if starts[-1] + size < frames:
            starts.append(frames - size)  # the last chunk ends at the end
        spans, kept = [], 0
        for i, s in enumerate(starts):
            end = frames if i == len(starts) - 1 else s + size - overlap // 2  # crop half the overlap
            spans.append((s, kept, end))
            kept = end
        return spans

    @torch.no_grad()
    def decode_chunked(self, latents: torch.Tensor, samples: int | None = None) -> torch.Tensor:
        """`decode` in overlapping chunks of `chunk_latents` frames: equal output, bounded memory."""
        n = self.config.downsampling

        def decode(z):  # (B, D, L) -> (B, A, L * n)
            out = []
            for start, keep_from, keep_to in self._chunks(z.shape[-1]):
                audio = self.decode(z[..., start:start + self.config.chunk_latents])  # (B, A, chunk * n)
                out.append(audio[..., (keep_from - start) * n:(keep_to - start) * n])
            return torch.cat(out, dim=-1)
        return in_pieces(decode, 1, latents)[..., :samples]  # (B, A, L * n); samod/cpu.py

    @torch.no_grad()
    def encode_distribution_chunked(self, audio: torch.Tensor) -> torch.Tensor:
        """`encode_distribution` in overlapping chunks (in latent frames, as decode_chunked); bounded memory."""
        audio = self.pad(self._check_audio(audio))  # (B, A, L * n)
        n = self.config.downsampling

        def encode(x):  # (B, A, L * n) -> (B, 2D, L)
            parts = []
            for start, keep_from, keep_to in self._chunks(x.shape[-1] // n):
                h = self.encoder(x[..., start * n:(start + self.config.chunk_latents) * n])  # (B, 2D, chunk)
                parts.append(h[..., keep_from - start:keep_to - start])
            return torch.cat(parts, dim=-1)
        return in_pieces(encode, 1, audio)  # samod/cpu.py: one item at a time on the CPU

    @torch.no_grad()
    def encode_chunked(self, audio: torch.Tensor, generator: torch.Generator | None = None,
                       sample: bool = True) -> torch.Tensor:
        """`encode` in overlapping chunks (in latent frames, as decode_chunked); bounded memory."""
        latents, mean, _, _ = vae_bottleneck(self.encode_distribution_chunked(audio), generator)
        return latents if sample else mean

    def num_parameters(self) -> int:
        return count_parameters(self)


# ---------------------------------------------------------------------- reference checkpoint layout

def reference_key(name: str, n_blocks: int = 5) -> str:
    """samod parameter name -> the stable-audio-tools name (without the `pretransform.model.` prefix).

    encoder.stem                        -> encoder.layers.0
    encoder.blocks.i.res_units.j.act1   -> encoder.layers.{i+1}.layers.{j}.layers.0   (conv1: .1, act2: .2, conv2: .3)
    encoder.blocks.i.act / .down        -> encoder.layers.{i+1}.layers.3 / .4
    encoder.act / encoder.proj          -> encoder.layers.{n+1} / encoder.layers.{n+2}
    decoder.blocks.i.act / .up          -> decoder.layers.{i+1}.layers.0 / .1; res_units.j -> .layers.{j+2}
    weight-norm parameters: parametrizations.weight.original0 / original1 -> weight_g / weight_v
    """
    parts = name.replace("parametrizations.weight.original0", "weight_g") \
                .replace("parametrizations.weight.original1", "weight_v").split(".")
    side, rest = parts[0], parts[1:]
    unit_layer = {"act1": "0", "conv1": "1", "act2": "2", "conv2": "3"}
    if rest[0] == "stem":
        return ".".join([side, "layers", "0", *rest[1:]])
    if rest[0] in ("act", "proj"):
        layer = n_blocks + 1 if rest[0] == "act" else n_blocks + 2
        return ".".join([side, "layers", str(layer), *rest[1:]])
    block = str(int(rest[1]) + 1)
    if rest[2] == "res_units":
        j = int(rest[3]) + (0 if side == "encoder" else 2)
        return ".".join([side, "layers", block, "layers", str(j), "layers", unit_layer[rest[4]], *rest[5:]])
    inner = {"encoder": {"act": "3", "down": "4"}, "decoder": {"act": "0", "up": "1"}}[side][rest[2]]
    return ".".join([side, "layers", block, "layers", inner, *rest[3:]])


def to_reference_state_dict(model: Autoencoder, prefix: str = "pretransform.model.") -> dict[str, torch.Tensor]:
    """samod weights under the reference checkpoint's names (weight_g / weight_v, SnakeBeta (C,))."""
    n = len(model.config.strides)
    return {prefix + reference_key(k, n): v for k, v in model.state_dict().items()}


def load_reference_state_dict(model: Autoencoder, state: dict[str, torch.Tensor],
                              prefix: str = "pretransform.model.") -> Autoencoder:
    """Load weights stored under the reference names; a missing or unused key is an error naming it."""
    n = len(model.config.strides)
    ours = {prefix + reference_key(k, n): k for k in model.state_dict()}
    theirs = {k for k in state if k.startswith(prefix)}
    check_keys(ours, theirs, f"AutoencoderConfig {model.config}")
    own = model.state_dict()
    converted = {}
    for ref, k in ours.items():
        tensor = state[ref]
        if tensor.shape != own[k].shape:
            if tensor.numel() != own[k].numel():
                raise ValueError(f"{ref}: checkpoint shape {tuple(tensor.shape)}, model expects "
                                 f"{tuple(own[k].shape)}; is the config right?")
            tensor = tensor.reshape(own[k].shape)  # e.g. SnakeBeta stored as (1, C, 1)
        converted[k] = tensor
    model.load_state_dict(converted)
    return model

