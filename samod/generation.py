"""Text to music in one call: prompt -> text tokens -> DiT sampling in latent space -> VAE decoding -> audio.

Paper 1 (Stable Audio 2) §2 puts the three trained parts together (Figure 2): the text encoder turns
the prompt into tokens, the DiT (samod/dit.py) denoises a whole window of latents conditioned on them
and on the timing (seconds_start = 0, seconds_total = the requested length), DPM-Solver++ with
classifier-free guidance drives the denoising (samod/sampler.py), and the VAE decoder turns the latents
into 44.1 kHz stereo. Variable length (§2.3): the model always generates its full window and writes
silence after seconds_total; the silence is trimmed. Audio-to-audio (SAO §2): the init audio is
encoded and noised to a lower sigma_max instead of starting from pure noise.

    import samod
    audio = samod.generate("Genre: Jazz|Instruments: Piano, Bass", seconds=20, seed=0)   # (2, samples)
    samod.save_generation("jazz.flac", audio)

`samod.generate` uses the trained models of the active profile (SAMOD_PROFILE); `Pipeline` holds
them for repeated calls and for other models (samod.pretrained for Stable Audio Open). `SamplingConfig`
holds the sampling settings and their defaults, Stable Audio Open's; each is also a keyword of `generate`
(steps=, cfg_scale=, seed=, sampler=, ...). A profile's models sample with `SamplingConfig.for_profile` (Stable
Audio Open's settings, with a lower guidance scale at tiny). The same seed gives the same audio.

Shapes (glossary): B batch, A audio channels, T samples, D latent channels, L latent frames. sigma_max and
sigma_min are variance-exploding noise levels, sigma_VE = tan(pi t / 2) (samod/sampler.py).
Taught in notebooks/05_sampling.ipynb.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_prep.encode import silence_latent
from samod.audio import save_audio
from samod.autoencoder import Autoencoder
from samod.diffusion import STAGES, DiffusionModel
from samod.profiles import SAMPLE_RATE, Profile, get_profile, profile_preset
from samod.sampler import SAMPLERS, Denoiser, audio_to_audio_start, get_sigmas, init_noise, make_uncond, sample
from samod.weights import autoencoder_checkpoint, load_autoencoder, load_clap, load_diffusion


@dataclass(frozen=True)
class SamplingConfig:
    """How `generate` samples. The defaults are Stable Audio Open's (SAT generate_diffusion_cond)."""
    steps: int = 100  # solver steps, one denoiser call each
    cfg_scale: float = 7.0  # classifier-free guidance: 1 = conditional only, 0 = unconditional
    cfg_rescale: float = 0.0  # phi of the guidance rescale (samod.sampler.Denoiser): 0 = plain CFG
    cfg_interval: tuple[float, float] = (0.0, math.inf)  # guide only where lo < sigma <= hi (sigma_VE); else cfg 1
    sigma_max: float = 500.0  # text to audio starts from pure noise at this level (sigma_VE)
    sigma_min: float = 0.3  # the last level before the final step, which denoises to 0
    sampler: str = "dpmpp-3m-sde"  # or "dpmpp-2m-sde", or "dpmpp-2m" (deterministic): samod.sampler.SAMPLERS
    seed: int = 0  # the same seed gives the same audio

    @staticmethod
    def tiny() -> "SamplingConfig":
        # guidance 3, not 7: at 7 the tiny DiT's latents shrink (notebook 05 §3.2) and its renders of held-out
        # prompts follow their prompt and genre less, and their notes move less, than at 3 (docs/experiments.md)
        return SamplingConfig(cfg_scale=3.0)

    @staticmethod
    def small() -> "SamplingConfig":
        return SamplingConfig()

    @staticmethod
    def paper() -> "SamplingConfig":
        return SamplingConfig()

    @staticmethod
    def for_profile(name: str) -> "SamplingConfig":
        """The settings a profile's trained models sample with by default (`load_pipeline`)."""
        return profile_preset(SamplingConfig, name)

    def __post_init__(self):
        """Every setting checked where it enters (a keyword of `generate` lands here too)."""
        if not _is_integer(self.steps) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer (Stable Audio Open uses {SamplingConfig.steps}), "
                             f"got {self.steps!r}")
        if not _is_number(self.cfg_scale) or not self.cfg_scale >= 0:
            raise ValueError(f"cfg_scale must be >= 0, a number (1 = conditional only, Stable Audio Open uses "
                             f"{SamplingConfig.cfg_scale}), got {self.cfg_scale!r}")
        if not _is_number(self.cfg_rescale) or not 0 <= self.cfg_rescale <= 1:
            raise ValueError(f"cfg_rescale must be a number in [0, 1] (0 = plain CFG), got {self.cfg_rescale!r}")
        interval = self.cfg_interval
        if (not isinstance(interval, (tuple, list)) or len(interval) != 2 or not all(map(_is_number, interval))
                or not 0 <= interval[0] < interval[1]):
            raise ValueError(f"cfg_interval must be two noise levels (lo, hi) with 0 <= lo < hi (sigma_VE; "
                             f"(0, math.inf) guides everywhere), got {interval!r}")
        if not (_is_number(self.sigma_max) and _is_number(self.sigma_min)) or not self.sigma_max > self.sigma_min > 0:
            raise ValueError(f"sigma_max and sigma_min must be numbers with sigma_max > sigma_min > 0 (Stable Audio "
                             f"Open: {SamplingConfig.sigma_max} and {SamplingConfig.sigma_min}), got "
                             f"{self.sigma_max!r} and {self.sigma_min!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: choose one of {SAMPLERS}")
        if not _is_integer(self.seed):
            raise ValueError(f"seed must be an integer (the same seed gives the same audio), got {self.seed!r}")


def _is_number(x) -> bool:
    """A real number (int, float, numpy scalar), not a bool or a string."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_integer(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def prompt_list(prompt: str | list[str] | None) -> list[str]:
    """A prompt or a list of prompts as a list, each checked to describe something (None is no prompt)."""
    if isinstance(prompt, str) or prompt is None:
        prompts = [prompt]
    elif isinstance(prompt, (bytes, dict)) or not hasattr(prompt, "__iter__"):
        raise ValueError(f"the prompt must be a string or a list of strings, got {type(prompt).__name__}")
    else:
        prompts = list(prompt)
    for i, p in enumerate(prompts):
        if p is not None and not isinstance(p, str):
            raise ValueError(f"every prompt must be a string, but prompt {i} of the list is {type(p).__name__} "
                             f"{p!r}: e.g. ['Genre: Jazz', 'Genre: Metal']")
    if not prompts or any(p is None or not p.strip() for p in prompts):
        raise ValueError("the prompt is empty: describe the music, e.g. 'Genre: Jazz|Instruments: Piano' "
                         "(an empty context is what classifier-free guidance uses as 'unconditional')")
    return prompts


@dataclass
class Pipeline:
    """The three trained parts and the window they were trained on."""
    autoencoder: Autoencoder  # latents <-> audio
    model: DiffusionModel  # timing conditioners + DiT: v_theta
    text_encoder: nn.Module  # features(prompts) -> (tokens (B, S, E), mask); CLAP (SA2) or T5 (SAO)
    window_frames: int  # L: latent frames generated per call (the training window)
    description: dict = field(default_factory=dict)  # what the model is (diffusion.json)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # generate's defaults (a profile's: load_pipeline)
    last_timing: dict = field(default_factory=dict)  # seconds spent in the last call: text, sampling, decoding
    silence: torch.Tensor | None = field(default=None, init=False, repr=False)  # (D,) the silence latent, once encoded

    @property
    def latent_rate(self) -> float:
        return self.autoencoder.config.latent_rate

    @property
    def window_seconds(self) -> float:
        """Longest audio one call can generate: window_frames / latent rate."""
        return self.window_frames / self.latent_rate

    @property
    def latent_scale(self) -> float:
        """The DiT's latents are the VAE's divided by this (DiffusionRecipe.latent_scale; 1.0 for SAO)."""
        return float(self.description.get("latent_scale", 1.0))

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, A, T) audio -> (B, D, L) latents as the DiT sees them (posterior mean / latent_scale)."""
        return self.autoencoder.encode_chunked(audio.to(self.device), sample=False) / self.latent_scale

    @torch.no_grad()
    def encode_window(self, audio: torch.Tensor) -> torch.Tensor:
        """(A, T) audio -> (1, D, window_frames): the latents of the audio cut or padded with silence to the window
        (where audio to audio starts), as `encode` gives them, without encoding all of that silence.

        Only the audio and chunk_overlap frames after it are encoded. A frame further on sees silence only (the
        encoder reaches at most chunk_overlap / 2 frames to each side: chunked encoding is exact for the same
        reason), so each is the latent of silence (data_prep.encode.silence_latent, the one the DiT trained on)."""
        config = self.autoencoder.config
        n, overlap, window = config.downsampling, config.chunk_overlap, self.window_frames
        audio = audio[:, :window * n]  # (A, <= window * n)
        frames = math.ceil(audio.shape[-1] / n)  # latent frames that hear the audio
        if frames + overlap >= window:  # little silence: encode the padded window
            return self.encode(F.pad(audio, (0, window * n - audio.shape[-1]))[None])  # (1, D, window)
        head = self.encode(F.pad(audio, (0, (frames + overlap) * n - audio.shape[-1]))[None])  # (1, D, frames+overlap)
        if self.silence is None:  # encoded once per pipeline
            self.silence = silence_latent(self.autoencoder)[0] / self.latent_scale  # (D,) on the CPU: the DiT's scale
        keep = frames + overlap // 2  # the head's frames that do not see its end
        tail = self.silence.to(self.device)[None, :, None].expand(-1, -1, window - keep)  # (1, D, window - keep)
        return torch.cat([head[..., :keep], tail], dim=-1)  # (1, D, window)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, D, L) latents as the DiT makes them -> (B, A, L * downsampling) audio (chunked: any length)."""
        return self.autoencoder.decode_chunked(latents * self.latent_scale)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "Pipeline":
        for part in (self.autoencoder, self.model, self.text_encoder):
            part.to(device)
        return self

    def check(self, prompts: list[str], seconds: float, init_noise_level: float | None = None,
              sampling: SamplingConfig | None = None, **flags) -> None:
        """Validate a request; every error says what is allowed (the sampling settings: SamplingConfig).
        `flags`: trim=, progress= (booleans) and callback= (a function or None)."""
        prompt_list(prompts)  # refuses an empty prompt
        if not _is_number(seconds) or not 0 < seconds <= self.window_seconds + 1e-6:
            raise ValueError(f"seconds must be in (0, {self.window_seconds:.2f}] for this model (its window is "
                             f"{self.window_frames} latent frames), a number, got {seconds!r}")
        if sampling is not None and not isinstance(sampling, SamplingConfig):
            raise ValueError(f"sampling must be a SamplingConfig (or pass its fields as keywords: steps=, "
                             f"cfg_scale=, ...), got {type(sampling).__name__}")
        if init_noise_level is not None and (not _is_number(init_noise_level) or init_noise_level <= 0):
            raise ValueError(f"init_noise_level must be a positive noise level (sigma_VE: 0.1 small variations ... "
                             f"100 almost a new piece), got {init_noise_level!r}")
        for name, value in flags.items():
            if name == "callback" and value is not None and not callable(value):
                raise ValueError(f"callback must be a function called at every solver step, or None, "
                                 f"got {type(value).__name__}")
            if name in ("trim", "progress") and not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")

    @torch.no_grad()
    def generate_latents(self, prompts: list[str], seconds: float, *, sampling: SamplingConfig | None = None,
                         init_latents: torch.Tensor | None = None, init_noise_level: float | None = None,
                         progress: bool = True, callback=None, **settings) -> torch.Tensor:
        """prompts -> (B, D, window_frames) latents in the DiT's scale (`decode` turns them into audio; init_latents
        are in that scale too, see `encode`); see `generate` for the arguments."""
        sampling = self.sampling if sampling is None else sampling
        self.check(prompts, seconds, init_noise_level, sampling, progress=progress, callback=callback)
        sampling = replace(sampling, **settings)  # checked by SamplingConfig
        started = time.perf_counter()
        device, b = self.device, len(prompts)
        text, _ = self.text_encoder.features(prompts)  # (B, S, E)
        zeros = torch.zeros(b, device=device)
        cond = self.model.condition(text.to(device).float(), zeros, torch.full((b,), float(seconds), device=device))
        denoiser = Denoiser(self.model, cond, make_uncond(cond), cfg_scale=sampling.cfg_scale,
                            cfg_rescale=sampling.cfg_rescale, cfg_interval=sampling.cfg_interval)
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
        if init_latents is None:  # text to audio: pure noise at sigma_max
            sigmas = get_sigmas(sampling.steps, sampling.sigma_max, sampling.sigma_min, device=device)
            shape = (b, self.model.config.latent_channels, self.window_frames)
            x = init_noise(shape, sigmas[0].item(), generator, device=device)  # (B, D, L)
        else:  # audio-to-audio: the init latents noised to init_noise_level, then the same sampler
            level = init_noise_level if init_noise_level is not None else 1.0
            if not sampling.sigma_min < level:
                raise ValueError(f"init_noise_level must exceed sigma_min = {sampling.sigma_min}, got {level}")
            sigmas = get_sigmas(sampling.steps, level, sampling.sigma_min, device=device)
            x = audio_to_audio_start(init_latents.to(device), sigmas[0].item(), generator)  # (B, D, L)
        text_done = time.perf_counter()
        latents = sample(denoiser, x, sigmas, sampler=sampling.sampler, generator=generator, progress=progress,
                         callback=callback)
        self.last_timing = {"text": text_done - started, "sampling": time.perf_counter() - text_done}
        return latents

    @torch.no_grad()
    def generate(self, prompt: str | list[str], seconds: float | None = None, *,
                 sampling: SamplingConfig | None = None, init_audio: np.ndarray | torch.Tensor | None = None,
                 init_noise_level: float = 1.0, trim: bool = True, progress: bool = True, callback=None, **settings):
        """Generate stereo 44.1 kHz audio (2, T) float32 for a prompt (a list of prompts: a list of arrays).

        seconds      length of the music (seconds_total); None = the whole window. The window is always
                     generated in full and cut at `seconds` (trim=False keeps the tail, to inspect it).
        steps, cfg_scale, cfg_rescale, cfg_interval, sigma_max, sigma_min, sampler, seed
                     the sampling settings by keyword (SamplingConfig says what each does); sampling=SamplingConfig(...)
                     sets them together (default: the pipeline's `sampling`), and a keyword overrides its field
        init_audio   audio-to-audio: (2, T) audio at 44.1 kHz whose latents are noised to init_noise_level
                     (0.1: small variations ... 100: almost a new piece) instead of starting at sigma_max
        """
        prompts = prompt_list(prompt)
        seconds = self.window_seconds if seconds is None else seconds
        sampling = self.sampling if sampling is None else sampling
        self.check(prompts, seconds, init_noise_level, sampling, trim=trim, progress=progress, callback=callback)
        sampling = replace(sampling, **settings)  # a misspelled setting fails here, naming SamplingConfig
        seconds = float(seconds)
        init_latents = None
        if init_audio is not None:
            audio = torch.as_tensor(np.asarray(init_audio, dtype=np.float32))
            if audio.ndim != 2 or audio.shape[0] != 2:
                raise ValueError(f"init_audio must be stereo (2, samples) at {SAMPLE_RATE} Hz, got {tuple(audio.shape)}; "
                                 f"samod.audio.load_audio reads files in that form")
            init_latents = self.encode_window(audio).expand(len(prompts), -1, -1)  # (B, D, L)
        latents = self.generate_latents(prompts, seconds, sampling=sampling, init_latents=init_latents,
                                        init_noise_level=init_noise_level, progress=progress, callback=callback)
        started = time.perf_counter()
        if trim:  # decode only what is kept, plus the margin that makes chunked decoding exact
            keep = math.ceil(seconds * self.latent_rate) + self.autoencoder.config.chunk_overlap
            latents = latents[..., :keep]  # (B, D, <= L)
        audio = self.decode(latents)  # (B, A, frames * 2048)
        self.last_timing["decoding"] = time.perf_counter() - started
        if trim:
            audio = audio[..., :round(seconds * SAMPLE_RATE)]  # (B, A, seconds * 44100): the silence cut off
        out = [a for a in audio.float().cpu().numpy()]
        return out[0] if isinstance(prompt, str) else out


def load_pipeline(profile: Profile | None = None, stage: str = "finetune", device: str | None = None) -> Pipeline:
    """The trained VAE, CLAP and DiT (`stage`: "pretrain" or "finetune") of a profile, checked to belong together,
    sampling with the profile's defaults (SamplingConfig.for_profile)."""
    profile = profile or get_profile()
    autoencoder = load_autoencoder(profile)
    model, description = load_diffusion(profile, stage, autoencoder_checkpoint=autoencoder_checkpoint(profile))
    text_encoder = load_clap(profile)
    if text_encoder.width != model.config.cond_dim:
        raise ValueError(f"the DiT expects {model.config.cond_dim}-wide text tokens, the profile's CLAP gives "
                         f"{text_encoder.width}: retrain the DiT after retraining CLAP")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Pipeline(autoencoder, model, text_encoder, description["window_frames"], description,
                    SamplingConfig.for_profile(profile.name)).to(device)


_pipelines: dict[tuple[str, str], Pipeline] = {}


def generate(prompt: str | list[str], seconds: float | None = None, *, stage: str = "finetune", **options):
    """`Pipeline.generate`, same keywords, with the trained models of the active profile (loaded once, then kept)."""
    prompt_list(prompt)  # no prompt is an error before the models load
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES} (the DiT of that training stage), got {stage!r}")
    key = (get_profile().name, stage)
    if key not in _pipelines:
        _pipelines[key] = load_pipeline(stage=stage)
    return _pipelines[key].generate(prompt, seconds=seconds, **options)


def save_generation(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write generated audio (2, T) as WAV or FLAC, chosen by the file extension."""
    if Path(path).suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"write .wav or .flac files, got {Path(path).name!r}")
    return save_audio(path, audio, sample_rate)
