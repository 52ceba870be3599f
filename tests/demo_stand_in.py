"""A stand-in for samod.generation.Pipeline for the demo page's and the widget's browser tests: the members
they use (generate, encode, decode, window_seconds, last_timing), returning short sine waves instead of
running models."""
import numpy as np
import torch

from samod.demo_page import build_demo_page
from samod.generation import SamplingConfig, prompt_list
from samod.profiles import SAMPLE_RATE

HOP = 2048  # samples per latent frame, as samod's VAE
PROMPTS = ["Genre: Jazz|Instruments: Piano", 'Tricky <b>bold</b> & "quoted" <script>alert(1)</script>']


class SinePipeline:
    """generate: a sine whose pitch follows the prompt; encode/decode: the samples regrouped, and back rounded."""
    window_seconds = 6.0
    last_timing = {"sampling": 0.0, "decoding": 0.0}  # what samod.widget reports after a generation
    sampling = SamplingConfig()  # the defaults a page and the widget read, as from samod's Pipeline

    def generate(self, prompt, seconds=None, *, steps, cfg_scale, seed, sampler, init_audio=None,
                 init_noise_level=1.0, progress=True, callback=None):
        prompt_list(prompt)  # an empty prompt is refused as by samod's Pipeline
        seconds = self.window_seconds if seconds is None else seconds
        for i in range(steps):
            if callback is not None:
                callback({"i": i})
        if not isinstance(prompt, str):  # a list of prompts: a list of arrays, as samod's Pipeline
            return [self.generate(p, seconds, steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler,
                                  init_audio=init_audio, init_noise_level=init_noise_level) for p in prompt]
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE  # (T,)
        frequency = 220.0 * (1 + len(prompt) % 5) + seed
        wave = 0.3 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
        if init_audio is not None:
            wave = wave + 0.5 * np.asarray(init_audio, dtype=np.float32)[0, :len(wave)]
        return np.stack([wave, wave])  # (2, T)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        frames = -(-audio.shape[-1] // HOP)
        audio = torch.nn.functional.pad(audio, (0, frames * HOP - audio.shape[-1]))  # (B, A, L * HOP)
        return audio.reshape(audio.shape[0], -1, frames)  # (B, A * HOP, L): every sample kept

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        audio = latents.reshape(latents.shape[0], 2, -1)  # (B, A, L * HOP)
        return torch.round(audio * 64) / 64  # a lossy autoencoder: 7-bit samples

def song(seconds: float, frequency: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = (0.4 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.stack([wave, wave])  # (2, T)


def build_stand_in_page(folder, **options):
    """Every section of the page from the stand-in: 2 prompts, 2 lengths, 1 song, 1 memorization candidate."""
    memorization = [{"prompt": PROMPTS[0], "audio": song(1.0, 330.0),
                     "neighbours": [{"name": "song_007 <jazz>", "similarity": 0.91, "audio": song(1.5, 330.0)},
                                    {"name": "song_019", "similarity": 0.62}]}]
    return build_demo_page(SinePipeline(), folder, prompts=PROMPTS, seconds=1.5, lengths=[1.0, 2.5],
                           songs=[{"name": "held-out song <1>", "audio": song(2.0, 440.0)}],
                           reconstruction_table=[{"model": "reference VAE", "stft_distance": 2.2}],
                           reconstruction_note="passed in by the test", memorization=memorization,
                           profile="tiny", weights=[{"stage": "autoencoder", "commit": "abc123", "steps": 1500}],
                           steps=4, progress=False, **options)
