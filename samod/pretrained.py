"""Stable Audio Open's released weights: stable-audio-tools' model_config.json and checkpoint -> a samod Pipeline.

Stable Audio Open (Evans et al. 2024, §2) is the architecture of Stable Audio 2 (paper 1 §2) with T5-base
text conditioning (SAO §2.2) and a 47.55 s window (1024 latent frames): the snake VAE
(samod/autoencoder.py), two timing conditioners and the DiT (samod/dit.py). It is released in the layout
of stable-audio-tools ("SAT") as two files:

- model_config.json: the sizes. `StableAudioOpenConfig.from_model_config` reads them into samod's
  AutoencoderConfig and DiTConfig and refuses, naming it, every setting samod does not implement (a
  pretransform scale, an output tanh, patches, adaLN, ...); `to_model_config` writes the same structure.
  The released file's "model" section is `StableAudioOpenConfig.paper().to_model_config()["model"]`.
- model.safetensors: one state dict with three prefixes, each mapped to samod's names in one place:

      model.model.*                                   DiT            samod.dit.reference_key
      conditioner.conditioners.seconds_start.*        timing         samod.dit.timing_reference_key
      conditioner.conditioners.seconds_total.*
      pretransform.model.encoder.* / decoder.*        VAE            samod.autoencoder.reference_key
                                                      (weight_g / weight_v pairs, SnakeBeta logs (C,))

  The T5 weights are not in it (SAT loads t5-base by name); here they come from a folder you have.

`load_stable_audio_open(checkpoint, config, t5_path)` checks that every weight samod needs is in the
checkpoint and every key of the checkpoint is used, naming each one that is not, and returns a
samod.generation.Pipeline: `pipeline.generate(prompt, seconds)` runs SAO's sampling, the defaults of
samod.generation.SamplingConfig (DPM-Solver++(3M) SDE, 100 steps, CFG 7, sigma_VE 500 -> 0.3). Nothing is
downloaded. Pickled checkpoints (.ckpt) can run code while they are read, so they load only with
allow_pickle=True.

`write_random_stable_audio_open(folder)` writes the same files (checkpoint, model_config.json and a T5
folder) for a toy-sized model with random weights, from samod alone, so the whole path runs anywhere.
tests/test_pretrained.py proves the mapping against diffusers' port of the released model
(StableAudioDiTModel, StableAudioProjectionModel, AutoencoderOobleck): a checkpoint in exactly this
layout, written from diffusers' models by inverting diffusers' documented conversion, gives equal outputs.

References: stable-audio-tools (models/factory.py, diffusion.py, dit.py, transformer.py, conditioners.py,
autoencoders.py, pretransforms.py); stabilityai/stable-audio-open-1.0 (model_config.json,
model.safetensors); diffusers' scripts/convert_stable_audio.py. Taught in notebooks/09_stable_audio_open.ipynb.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from samod import autoencoder as vae
from samod import dit as dit_layout
from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.checkpoints import check_keys
from samod.diffusion import DiffusionModel
from samod.dit import DiTConfig
from samod.generation import Pipeline
from samod.profiles import SAMPLE_RATE
from samod.t5 import T5Conditioner, T5ConditionerConfig, train_t5_tokenizer

# training.demo.demo_cond of SAO's model_config.json: the prompts its training run rendered as demos
SAO_DEMO = (
    {"prompt": "Amen break 174 BPM", "seconds_start": 0, "seconds_total": 12},
    {"prompt": "A beautiful orchestral symphony, classical music", "seconds_start": 0, "seconds_total": 160},
    {"prompt": "Chill hip-hop beat, chillhop", "seconds_start": 0, "seconds_total": 190},
    {"prompt": "A pop song about love and loss", "seconds_start": 0, "seconds_total": 180},
)
PREFIXES = {"dit": "model.model.", "timing": "conditioner.conditioners.", "autoencoder": "pretransform.model."}
_REQUIRED = object()


# ---------------------------------------------------------------------- model_config.json

def _at(config: dict, path: str, default=_REQUIRED):
    """config["a"]["b"]["c"] for path "a.b.c"; `default` where SAT has one, else an error naming the path."""
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _REQUIRED:
                raise ValueError(f"model_config.json has no {path}: expected a stable-audio-tools "
                                 f"'diffusion_cond' config such as Stable Audio Open's")
            return default
        node = node[part]
    return node


def _expect(config: dict, path: str, allowed, default=_REQUIRED, why: str = "") -> None:
    value = _at(config, path, default)
    if value != allowed:
        raise ValueError(f"model_config.json: {path} is {value!r}; samod implements only {allowed!r}{why}")


def _known(config: dict, path: str, keys: set[str]) -> None:
    """Refuse settings samod does not know: each could change the architecture without a key changing."""
    unknown = sorted(set(_at(config, path)) - keys)
    if unknown:
        raise ValueError(f"model_config.json: {path} has settings samod does not implement: {unknown} "
                         f"(it knows {sorted(keys)})")


@dataclass
class StableAudioOpenConfig:
    """What model_config.json says, in samod's configs: the VAE, the DiT (with the timing range) and the text."""
    autoencoder: AutoencoderConfig  # pretransform.config (encoder, decoder, VAE bottleneck)
    dit: DiTConfig  # diffusion.config, plus conditioning.cond_dim and the number conditioners' max_val
    window_frames: int = 1024  # L: sample_size / downsampling_ratio (SAO: 2097152 / 2048 = 1024, 47.55 s)
    text_tokens: int = 128  # S: the T5 conditioner's max_length
    t5_model_name: str = "t5-base"  # the text encoder SAT loads by name (its weights are not in the checkpoint)
    demo: list[dict] = field(default_factory=lambda: [dict(d) for d in SAO_DEMO])  # training.demo.demo_cond

    def __post_init__(self):
        a, d = self.autoencoder, self.dit
        if a.latent_dim != d.latent_channels:
            raise ValueError(f"the DiT works on {d.latent_channels}-channel latents, the VAE makes {a.latent_dim}")
        if a.audio_channels != 2 or a.sample_rate != SAMPLE_RATE:
            raise ValueError(f"samod generates stereo at {SAMPLE_RATE} Hz, got {a.audio_channels} channels at "
                             f"{a.sample_rate} Hz")
        if d.head_dim < 64:
            raise ValueError(f"head dim {d.head_dim} < 64: SAT rotates max(K / 2, 32) dims of each head, samod "
                             f"K / 2; they agree only from K = 64 (SAO: 1536 / 24 = 64)")
        if d.cond_dim % d.head_dim or d.cross_kv_heads != d.cond_dim // d.head_dim:
            raise ValueError(f"SAT gives cross-attention cond_dim / K = {d.cond_dim} / {d.head_dim} key/value heads "
                             f"(SAO: 12); DiTConfig.cross_kv_heads is {d.cross_kv_heads}")
        if d.mlp_mult != 4 or d.timestep_features != 256:
            raise ValueError("SAT's DiT has a 4x MLP and 256 timestep features; DiTConfig must keep those defaults")
        if self.window_frames < 1 or self.text_tokens < 1:
            raise ValueError(f"window_frames and text_tokens must be positive, got {self.window_frames}, "
                             f"{self.text_tokens}")

    @property
    def sample_size(self) -> int:
        """Samples per generated window (SAO: 2097152)."""
        return self.window_frames * self.autoencoder.downsampling

    @staticmethod
    def paper() -> "StableAudioOpenConfig":
        # the released stabilityai/stable-audio-open-1.0 (1.21B parameters without T5)
        return StableAudioOpenConfig(AutoencoderConfig.paper(), DiTConfig.paper())

    @staticmethod
    def tiny() -> "StableAudioOpenConfig":
        # the same layout at toy size for a CPU: 2048x VAE, 64-dim heads, T5 width 64, a 6 s window
        return StableAudioOpenConfig(AutoencoderConfig(channels=4, latent_dim=8),
                                     DiTConfig(latent_channels=8, width=128, depth=2, heads=2, cross_kv_heads=1,
                                               cond_dim=64), window_frames=128)

    @classmethod
    def from_model_config(cls, config: dict) -> "StableAudioOpenConfig":
        """Read a parsed model_config.json; every setting samod does not implement is an error naming it."""
        def expect(path, allowed, default=_REQUIRED, why=""):
            _expect(config, path, allowed, default, why)

        expect("model_type", "diffusion_cond")
        expect("sample_rate", SAMPLE_RATE)
        expect("audio_channels", 2)
        # the VAE (SAT: create_pretransform_from_config, OobleckEncoder / OobleckDecoder, VAEBottleneck)
        pre = "model.pretransform."
        enc, dec = pre + "config.encoder.", pre + "config.decoder."
        _known(config, pre[:-1], {"type", "config", "scale", "iterate_batch", "model_half", "enable_grad"})
        _known(config, pre + "config", {"encoder", "decoder", "bottleneck", "latent_dim", "downsampling_ratio",
                                        "io_channels"})
        expect(pre + "type", "autoencoder")
        expect(pre + "scale", 1.0, 1.0, ": samod's latents are the VAE's, not divided by a scale")
        expect(pre + "config.bottleneck.type", "vae")
        expect(enc + "type", "oobleck")
        expect(dec + "type", "oobleck")
        _known(config, enc + "config", {"in_channels", "channels", "c_mults", "strides", "latent_dim", "use_snake",
                                        "antialias_activation"})
        _known(config, dec + "config", {"out_channels", "channels", "c_mults", "strides", "latent_dim", "use_snake",
                                        "antialias_activation", "use_nearest_upsample", "final_tanh"})
        channels = _at(config, enc + "config.channels", 128)  # SAT's defaults where the config may omit a value
        c_mults = list(_at(config, enc + "config.c_mults", [1, 2, 4, 8]))
        strides = list(_at(config, enc + "config.strides", [2, 4, 8, 8]))
        latent_dim = _at(config, pre + "config.latent_dim")
        expect(enc + "config.in_channels", 2, 2)
        expect(dec + "config.out_channels", 2, 2)
        for side in (enc, dec):
            expect(side + "config.use_snake", True, False, ": samod's VAE uses SnakeBeta activations")
            expect(side + "config.antialias_activation", False, False)
        expect(dec + "config.use_nearest_upsample", False, False, ": samod's decoder upsamples by transposed conv")
        expect(dec + "config.final_tanh", False, True, ": samod's decoder has no output tanh (Stable Audio 2 "
                                                         "removed it)")
        why = ": samod's encoder and decoder share AutoencoderConfig.channels, channel_mults and strides"
        expect(dec + "config.channels", channels, 128, why)
        expect(dec + "config.c_mults", c_mults, [1, 2, 4, 8], why)
        expect(dec + "config.strides", strides, [2, 4, 8, 8], why)
        expect(enc + "config.latent_dim", 2 * latent_dim, 32, ": the encoder outputs a mean and a scale per channel")
        expect(dec + "config.latent_dim", latent_dim, 32)
        expect(pre + "config.downsampling_ratio", math.prod(strides))
        expect(pre + "config.io_channels", 2)
        autoencoder = AutoencoderConfig(channels=channels, channel_mults=tuple(c_mults), strides=tuple(strides),
                                        latent_dim=latent_dim)
        # the conditioners (SAT: T5Conditioner, NumberConditioner)
        conditioners = {c.get("id"): c for c in _at(config, "model.conditioning.configs")}
        if set(conditioners) != {"prompt", "seconds_start", "seconds_total"}:
            raise ValueError(f"model_config.json: conditioners {sorted(map(str, conditioners))}; samod implements "
                             f"Stable Audio Open's: prompt (t5), seconds_start and seconds_total (number)")
        cond_dim = _at(config, "model.conditioning.cond_dim")
        prompt = conditioners["prompt"]
        _expect(prompt, "type", "t5", why=": samod loads Stable Audio Open's T5 conditioner")
        max_seconds = None
        for name in ("seconds_start", "seconds_total"):
            _expect(conditioners[name], "type", "number")
            _expect(conditioners[name], "config.min_val", 0, 0, f" for {name}: v = seconds / max_val")
            value = _at(conditioners[name], "config.max_val", 1)
            if max_seconds not in (None, value):
                raise ValueError(f"model_config.json: seconds_start and seconds_total have different max_val "
                                 f"({max_seconds}, {value}); samod's TimingConditioner has one")
            max_seconds = value
        # the DiT (SAT: DiffusionTransformer with transformer_type continuous_transformer)
        d = "model.diffusion.config."
        _known(config, "model.diffusion", {"type", "config", "cross_attention_cond_ids", "global_cond_ids"})
        _known(config, d[:-1], {"io_channels", "patch_size", "embed_dim", "cond_token_dim", "project_cond_tokens",
                                "global_cond_dim", "project_global_cond", "input_concat_dim", "prepend_cond_dim",
                                "depth", "num_heads", "transformer_type", "global_cond_type", "timestep_cond_type",
                                "diffusion_objective"})
        expect("model.diffusion.type", "dit")
        expect("model.diffusion.cross_attention_cond_ids", ["prompt", "seconds_start", "seconds_total"])
        expect("model.diffusion.global_cond_ids", ["seconds_start", "seconds_total"])
        expect(d + "transformer_type", "continuous_transformer", "x-transformers")
        expect(d + "diffusion_objective", "v", "v", ": samod's DiT predicts v (the cosine schedule of SAO)")
        for name, allowed, default in (("patch_size", 1, 1), ("project_cond_tokens", False, True),
                                       ("project_global_cond", True, True), ("input_concat_dim", 0, 0),
                                       ("prepend_cond_dim", 0, 0), ("global_cond_type", "prepend", "prepend"),
                                       ("timestep_cond_type", "global", "global")):
            expect(d + name, allowed, default)
        expect(d + "io_channels", latent_dim, 32, ": the DiT works on the VAE's latents")
        expect("model.io_channels", latent_dim)
        expect(d + "cond_token_dim", cond_dim, 0, ": text and timing tokens are cond_dim wide")
        expect(d + "global_cond_dim", 2 * cond_dim, 0, ": the global token is the two timing tokens side by side")
        width, heads = _at(config, d + "embed_dim", 768), _at(config, d + "num_heads", 8)
        if width % heads or cond_dim % (width // heads):
            raise ValueError(f"model_config.json: embed_dim {width} and cond_token_dim {cond_dim} must be "
                             f"multiples of the head dim embed_dim / num_heads")
        dit = DiTConfig(latent_channels=latent_dim, width=width, depth=_at(config, d + "depth", 12), heads=heads,
                        cross_kv_heads=cond_dim // (width // heads), cond_dim=cond_dim, max_seconds=float(max_seconds))
        sample_size = _at(config, "sample_size")
        if sample_size % autoencoder.downsampling:
            raise ValueError(f"model_config.json: sample_size {sample_size} is not a multiple of the VAE's "
                             f"downsampling {autoencoder.downsampling}")
        demo = _at(config, "training.demo.demo_cond", [])
        return cls(autoencoder, dit, sample_size // autoencoder.downsampling,
                   text_tokens=_at(prompt, "config.max_length", 128),
                   t5_model_name=_at(prompt, "config.t5_model_name", "t5-base"), demo=copy.deepcopy(demo))

    def to_model_config(self) -> dict:
        """The model_config.json of this model, in the structure of Stable Audio Open's."""
        a, d = self.autoencoder, self.dit
        oobleck = {"channels": a.channels, "c_mults": list(a.channel_mults), "strides": list(a.strides),
                   "use_snake": True}
        seconds = {"min_val": 0, "max_val": int(d.max_seconds) if float(d.max_seconds).is_integer() else d.max_seconds}
        return {
            "model_type": "diffusion_cond", "sample_size": self.sample_size, "sample_rate": a.sample_rate,
            "audio_channels": a.audio_channels,
            "model": {
                "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": {
                    "encoder": {"type": "oobleck", "requires_grad": False, "config": {
                        "in_channels": a.audio_channels, **oobleck, "latent_dim": 2 * a.latent_dim}},
                    "decoder": {"type": "oobleck", "config": {
                        "out_channels": a.audio_channels, **oobleck, "latent_dim": a.latent_dim, "final_tanh": False}},
                    "bottleneck": {"type": "vae"}, "latent_dim": a.latent_dim, "downsampling_ratio": a.downsampling,
                    "io_channels": a.audio_channels}},
                "conditioning": {"configs": [
                    {"id": "prompt", "type": "t5", "config": {"t5_model_name": self.t5_model_name,
                                                              "max_length": self.text_tokens}},
                    {"id": "seconds_start", "type": "number", "config": dict(seconds)},
                    {"id": "seconds_total", "type": "number", "config": dict(seconds)}],
                    "cond_dim": d.cond_dim},
                "diffusion": {"cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                              "global_cond_ids": ["seconds_start", "seconds_total"], "type": "dit", "config": {
                                  "io_channels": d.latent_channels, "embed_dim": d.width, "depth": d.depth,
                                  "num_heads": d.heads, "cond_token_dim": d.cond_dim, "global_cond_dim": 2 * d.cond_dim,
                                  "project_cond_tokens": False, "transformer_type": "continuous_transformer"}},
                "io_channels": d.latent_channels},
            "training": {"demo": {"demo_cond": copy.deepcopy(self.demo)}},
        }


# ---------------------------------------------------------------------- the checkpoint

def to_stable_audio_open_state_dict(autoencoder: Autoencoder, model: DiffusionModel) -> dict[str, torch.Tensor]:
    """samod's VAE, timing conditioners and DiT under the released checkpoint's names (SAT layout)."""
    state = dit_layout.to_reference_state_dict(model.dit, PREFIXES["dit"])
    state.update(dit_layout.timing_to_reference_state_dict(model.timing, PREFIXES["timing"]))
    state.update(vae.to_reference_state_dict(autoencoder, PREFIXES["autoencoder"]))
    return state


def load_stable_audio_open_state_dict(autoencoder: Autoencoder, model: DiffusionModel,
                                      state: dict[str, torch.Tensor]) -> None:
    """Load a whole SAT state dict; the missing and the unused keys are counted and named in one KeyError.

    The DiT's zero LayerNorm betas and its rotary inv_freq are constants SAT stores: accepted when present
    (and checked by samod.dit.load_reference_state_dict), not required.
    """
    expected = set(to_stable_audio_open_state_dict(autoencoder, model))
    optional = {k for k in expected if k.startswith(PREFIXES["dit"]) and k.endswith((".beta", ".inv_freq"))}
    hint = f"Check that the config belongs to the checkpoint (SAT layout: {', '.join(PREFIXES.values())})"
    check_keys(expected, state, "model_config.json", optional, hint)
    dit_layout.load_reference_state_dict(model.dit, state, PREFIXES["dit"])
    dit_layout.load_timing_reference_state_dict(model.timing, state, PREFIXES["timing"])
    vae.load_reference_state_dict(autoencoder, state, PREFIXES["autoencoder"])


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict: safetensors; a pickled file (.ckpt, .pt, .bin) only with allow_pickle=True."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: point to Stable Audio Open's model.safetensors "
                                f"(nothing is downloaded)")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    if not allow_pickle:
        raise ValueError(f"{path.name} is not a .safetensors file: a pickled checkpoint can run code while it is "
                         f"read. Use model.safetensors, or pass allow_pickle=True for a file you trust")
    state = torch.load(path, map_location="cpu", weights_only=False)  # the caller vouched for the file
    state = state.get("state_dict", state)  # a Lightning .ckpt keeps the weights under "state_dict"
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path.name} does not hold a state dict of tensors")
    return state


class MissingTextEncoder(nn.Module):
    """Stands in for T5 when no t5_path is given: the VAE and the DiT work, a text prompt says what is missing."""

    def __init__(self, width: int, max_tokens: int, model_name: str = "t5-base"):
        super().__init__()
        self.width, self.max_tokens, self.model_name = width, max_tokens, model_name

    def features(self, prompts: list[str]):
        raise FileNotFoundError(
            f"this pipeline has no text encoder: pass t5_path, a folder with {self.model_name} in transformers' "
            f"format (config.json, model.safetensors or pytorch_model.bin, spiece.model or tokenizer.json), to "
            f"load_stable_audio_open; the checkpoint does not contain T5 and samod downloads nothing")


def load_stable_audio_open(checkpoint_path: str | Path, config_path: str | Path, t5_path: str | Path | None = None,
                           *, allow_pickle: bool = False, device: str | torch.device | None = None) -> Pipeline:
    """Stable Audio Open from its files -> a samod Pipeline (VAE, timing conditioners and DiT, T5, window).

    checkpoint_path  model.safetensors in stable-audio-tools' layout (pickled .ckpt only with allow_pickle=True)
    config_path      its model_config.json: builds AutoencoderConfig and DiTConfig (StableAudioOpenConfig)
    t5_path          a local t5-base folder (transformers format); None: no text, generate() says what to pass
    device           where the models go (default: CUDA when available)
    """
    config = StableAudioOpenConfig.from_model_config(json.loads(Path(config_path).read_text()))
    state = read_checkpoint(checkpoint_path, allow_pickle)
    with torch.device("meta"):  # no initialisation: every tensor comes from the checkpoint
        autoencoder, model = Autoencoder(config.autoencoder), DiffusionModel(config.dit)
    autoencoder, model = autoencoder.to_empty(device="cpu"), model.to_empty(device="cpu")
    load_stable_audio_open_state_dict(autoencoder, model, state)
    del state
    if t5_path is None:
        text_encoder = MissingTextEncoder(config.dit.cond_dim, config.text_tokens, config.t5_model_name)
    else:
        text_encoder = T5Conditioner.from_pretrained_local(t5_path, max_tokens=config.text_tokens)
        if text_encoder.width != config.dit.cond_dim:
            raise ValueError(f"the T5 in {t5_path} gives {text_encoder.width}-wide features, the DiT expects "
                             f"{config.dit.cond_dim} (SAO: t5-base, 768; SAT projects other widths, samod does not)")
    description = {"source": "stable-audio-tools checkpoint", "checkpoint": str(checkpoint_path),
                   "model_config": str(config_path), "t5": None if t5_path is None else str(t5_path),
                   "text_encoder": type(text_encoder).__name__, "window_frames": config.window_frames,
                   "latent_rate": config.autoencoder.latent_rate,
                   "window_seconds": config.window_frames / config.autoencoder.latent_rate,
                   "dit": asdict(config.dit), "autoencoder": asdict(config.autoencoder), "demo": config.demo}
    pipeline = Pipeline(autoencoder.eval(), model.eval(), text_encoder.eval(), config.window_frames, description)
    return pipeline.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


# ---------------------------------------------------------------------- writing the layout

def save_stable_audio_open(folder: str | Path, autoencoder: Autoencoder, model: DiffusionModel,
                           config: StableAudioOpenConfig) -> tuple[Path, Path]:
    """Write model.safetensors and model_config.json in the released layout; returns their paths."""
    if autoencoder.config != config.autoencoder or model.config != config.dit:
        raise ValueError("the models were not built from this StableAudioOpenConfig (autoencoder or dit differ)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in to_stable_audio_open_state_dict(autoencoder, model).items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "model_config.json").write_text(json.dumps(config.to_model_config(), indent=4))
    return folder / "model.safetensors", folder / "model_config.json"


def write_random_stable_audio_open(folder: str | Path, config: StableAudioOpenConfig | None = None,
                                   seed: int = 0) -> dict[str, Path]:
    """A stand-in for the released files: random weights at `config` (default tiny) and a tiny random T5.

    PyTorch's initialisation, except that the tensors samod starts at zero (the DiT's output projections
    and residual convs, the SnakeBeta logs) are drawn N(0, 0.02^2), so that the text and timing reach the
    output. The T5 is T5ConditionerConfig.tiny() at the DiT's cond_dim with a byte-level BPE trained on
    the demo prompts. Same seed, same files. Returns {"checkpoint", "config", "t5"} paths for
    load_stable_audio_open.
    """
    config = config or StableAudioOpenConfig.tiny()
    folder = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # module initialisers use the global generator
        torch.manual_seed(seed)
        autoencoder, model = Autoencoder(config.autoencoder), DiffusionModel(config.dit)
        with torch.no_grad():
            for p in [*autoencoder.parameters(), *model.parameters()]:
                if not p.any():
                    p.copy_(0.02 * torch.randn(p.shape, generator=generator))
        prompts = [d["prompt"] for d in config.demo] or ["Stable Audio Open"]
        t5_config = T5ConditionerConfig(**{**asdict(T5ConditionerConfig.tiny()), "width": config.dit.cond_dim,
                                           "max_tokens": config.text_tokens})
        t5 = T5Conditioner(t5_config, train_t5_tokenizer(prompts, 512, config.text_tokens))
    checkpoint, config_path = save_stable_audio_open(folder, autoencoder, model, config)
    return {"checkpoint": checkpoint, "config": config_path, "t5": t5.save(folder / "t5")}
