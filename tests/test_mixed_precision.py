"""Mixed precision on the CPU: each stage's training step and the sampler under bfloat16 autocast, at toy sizes.

torch autocasts on the CPU as on CUDA (matmuls and convolutions in bfloat16, the rest in float32), so the path a
GPU run takes (TrainConfig.precision "bf16", the default there) is tested here without a GPU. Each stage's step
runs twice from the same weights and random numbers, in float32 and under autocast; the bf16 step must be finite
and close to the float32 one:

- loss: relative difference <= LOSS_RTOL (bfloat16 keeps 8 bits of mantissa: a relative rounding of 2^-8 = 0.4 %
  per operation, a few per cent after a network's worth of them);
- gradient: cosine similarity >= GRAD_COSINE (GRAD_COSINE_OF for the autoencoder's generator) with the float32
  gradient (the direction AdamW steps along), and every gradient float32 (the weights stay float32: autocast casts
  copies);
- sampler: the generated latents within SAMPLE_RTOL (relative L2) of float32's.

The float32 islands are checked by recording the dtype that every STFT and every log of the losses receives.
"""
import math
from dataclasses import replace

import pytest
import torch
from torch.overrides import TorchFunctionMode

from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.autoencoder_training import (AutoencoderLossConfig, AutoencoderStage, discriminator_optimizer,
                                      generator_optimizer)
from samod.clap import ClapEncoder, ClapModelConfig, log_mel, train_clap_tokenizer
from samod.clap_training import ClapStage
from samod.diffusion import DiffusionModel
from samod.diffusion_training import DiffusionStage
from samod.dit import DiTConfig
from samod.finetune import AdapterConfig, FinetuneStage, add_adapter
from samod.sampler import Denoiser, get_sigmas, init_noise, make_uncond, sample
from samod.train import OptimizerConfig, StepBatches, TrainConfig, Trainer

LOSS_RTOL = 0.05  # |loss_bf16 - loss_fp32| / |loss_fp32|
GRAD_COSINE = 0.99  # cos(grad_bf16, grad_fp32)
# The untrained autoencoder's generator step is the least precise: its reconstruction is near silence, whose log
# magnitudes (MRSTFT) magnify the bf16 rounding of its samples, and the Snake alpha / beta gradients are sums over
# every sample of terms of both signs. A lower bound for it alone:
GRAD_COSINE_OF = {"autoencoder generator": 0.97}
SAMPLE_RTOL = 0.05  # |x_bf16 - x_fp32| / |x_fp32| after the whole sampling loop

TOY_DIT = DiTConfig(latent_channels=8, width=32, depth=2, heads=2, cross_kv_heads=1, cond_dim=8, max_seconds=64.0)
PROMPTS = ["Genre: metal|BPM: 166", "calm, flute, bossa nova", "ambient pad", "hip hop, 89, c major"]


class FixedText(torch.nn.Module):
    """A stand-in text encoder: a fixed random embedding per prompt (width 8, 4 tokens)."""
    width, max_tokens = 8, 4

    def features(self, prompts):
        rows = [torch.randn(4, 8, generator=torch.Generator().manual_seed(sum(map(ord, p)))) for p in prompts]
        return torch.stack(rows), torch.ones(len(prompts), 4, dtype=torch.bool)


# ----------------------------------------------------------------------------------------------------
# The stages at toy sizes, each built from seed 0, with one batch

def autoencoder_stage():
    torch.manual_seed(0)
    losses = AutoencoderLossConfig(disc_filters=4, disc_fft_sizes=(512, 256, 128), discriminator_start=0)
    return AutoencoderStage(Autoencoder(AutoencoderConfig(channels=4, latent_dim=8)), losses,
                            generator_optimizer("tiny"), discriminator_optimizer("tiny"))


def audio_batch(batch=2, samples=4096):
    return {"audio": 0.3 * torch.randn(batch, 2, samples, generator=torch.Generator().manual_seed(1))}


@pytest.fixture(scope="module")
def tokenizer():
    return train_clap_tokenizer(PROMPTS * 8, vocab_size=1024)


def clap_stage(tokenizer):
    torch.manual_seed(0)
    return ClapStage(ClapEncoder(ClapModelConfig.tiny(), tokenizer), OptimizerConfig(lr=1e-3))


def clap_batch(seconds=6.0):
    g = torch.Generator().manual_seed(2)
    t = torch.arange(int(44100 * seconds)) / 44100
    tones = torch.stack([torch.sin(2 * math.pi * f * t) for f in (220.0, 330.0, 440.0, 550.0)])  # (4, T)
    audio = 0.3 * tones[:, None].expand(4, 2, -1) + 0.01 * torch.randn(4, 2, t.numel(), generator=g)
    return {"audio": audio, "prompt": PROMPTS}


def dit_model():
    """A toy DiT whose zero-initialised layers are drawn too, so that every weight gets a gradient."""
    torch.manual_seed(0)
    model = DiffusionModel(TOY_DIT)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return model


def dit_stage():
    return DiffusionStage(dit_model(), FixedText(), OptimizerConfig(lr=1e-3))


def lora_stage():
    return FinetuneStage(add_adapter(dit_model(), AdapterConfig(rank=4, alpha=4)), FixedText(), OptimizerConfig())


def latent_batch(frames):
    """Pre-training windows are short, fine-tuning ones longer (paper 1: 95 s, then 285 s); here 16 and 48."""
    g = torch.Generator().manual_seed(3)
    return {"latents": torch.randn(4, 8, frames, generator=g), "prompt": PROMPTS,
            "seconds_start": torch.tensor([0.0, 1.0, 0.0, 2.0]), "seconds_total": torch.tensor([10.0, 12, 5, 30])}


# name: (stage builder taking the tokenizer, batch builder, step): every optimizer of every stage
CASES = {
    "autoencoder generator": (lambda tok: autoencoder_stage(), audio_batch, 0),  # reconstruction + KL + adversary
    "autoencoder discriminator": (lambda tok: autoencoder_stage(), audio_batch, 1),
    "clap": (clap_stage, lambda: clap_batch(), 0),
    "dit pre-training": (lambda tok: dit_stage(), lambda: latent_batch(16), 0),
    "dit fine-tuning": (lambda tok: dit_stage(), lambda: latent_batch(48), 0),
    "lora": (lambda tok: lora_stage(), lambda: latent_batch(16), 0),
}


def step_once(stage, batch, step, bf16):
    """(optimizer name, loss, the gradient of that optimizer's parameters flattened, their dtypes)."""
    torch.manual_seed(7)  # the same t, noise, crops and dropout in both precisions
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        name, loss, _ = stage.training_step(batch, step)
    loss.backward()
    params = [p for p in stage.optimizers()[name][0] if p.grad is not None]
    assert params, f"no parameter of optimizer {name!r} got a gradient"
    return name, loss.detach(), torch.cat([p.grad.flatten() for p in params]), {p.grad.dtype for p in params}


@pytest.mark.parametrize("case", list(CASES))
def test_training_step_under_bf16_autocast_is_close_to_float32(case, tokenizer):
    build, batch, step = CASES[case]
    name, loss32, grad32, _ = step_once(build(tokenizer), batch(), step, bf16=False)
    name16, loss16, grad16, dtypes = step_once(build(tokenizer), batch(), step, bf16=True)
    assert name16 == name
    assert loss16.dtype == torch.float32 and dtypes == {torch.float32}  # the loss and weights stay float32
    assert torch.isfinite(loss16) and torch.isfinite(grad16).all()
    assert abs(loss16 - loss32) <= LOSS_RTOL * abs(loss32), (loss16.item(), loss32.item())
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert cosine >= GRAD_COSINE_OF.get(case, GRAD_COSINE), cosine.item()
    assert not torch.equal(grad16, grad32)  # the autocast did change the arithmetic: this test can fail


def test_lora_under_bf16_trains_only_the_adapter():
    stage = lora_stage()
    _, _, grad, _ = step_once(stage, latent_batch(16), 0, bf16=True)
    trained = {n for n, p in stage.model.named_parameters() if p.grad is not None}
    assert trained and all("lora_" in n for n in trained)


# ----------------------------------------------------------------------------------------------------
# The Trainer's precision field

class RecordsAutocast:
    """A one-weight stage that records whether its step ran under autocast, and in which dtype."""

    def __init__(self):
        self.w, self.seen = torch.nn.Linear(4, 1), []

    def modules(self):
        return {"w": self.w}

    def optimizers(self):
        return {"w": (self.w.parameters(), OptimizerConfig(lr=1e-2))}

    def ema_modules(self):
        return []

    def training_step(self, batch, step):
        self.seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return "w", self.w(batch).float().pow(2).mean(), {}


@pytest.mark.parametrize("precision, expected", [("bf16", torch.bfloat16), ("fp32", False), ("auto", False)])
def test_trainer_precision_field_on_cpu(precision, expected):
    stage = RecordsAutocast()
    trainer = Trainer(stage, TrainConfig(steps=2, progress=False, device="cpu", precision=precision), None)
    trainer.fit(lambda step: torch.randn(3, 4))
    assert stage.seen == [expected, expected]
    assert stage.w.weight.dtype == torch.float32 and trainer.bad_steps == 0
    assert TrainConfig(precision="auto").autocast_dtype(torch.device("cuda")) == torch.bfloat16  # as before
    with pytest.raises(ValueError, match="bf16, fp32"):
        TrainConfig(precision="fp16")


def test_trainer_trains_a_real_stage_in_bf16_close_to_float32(tmp_path):
    """Three Trainer steps of the DiT at both precisions: the same run, the weights a few bf16 roundings apart."""
    runs = {}
    for precision in ("fp32", "bf16"):
        stage = dit_stage()
        trainer = Trainer(stage, TrainConfig(steps=3, log_every=1, progress=False, device="cpu", precision=precision),
                          tmp_path / precision)
        history = trainer.fit(StepBatches(_latent_items(), batch_size=2))
        runs[precision] = ([h["loss/model"] for h in history], trainer.ema["model"].state_dict())
    (loss32, ema32), (loss16, ema16) = runs["fp32"], runs["bf16"]
    assert all(math.isfinite(x) for x in loss16)
    assert all(abs(a - b) <= LOSS_RTOL * abs(b) for a, b in zip(loss16, loss32)), (loss16, loss32)
    for key, value in ema32.items():  # three AdamW steps of lr 1e-3 apart from the same start
        assert ema16[key].dtype == value.dtype == torch.float32
        assert (ema16[key] - value).norm() <= 0.05 * value.norm(), key


def _latent_items():
    batch = latent_batch(16)
    return [{"latents": batch["latents"][i], "prompt": batch["prompt"][i], "seconds_start": batch["seconds_start"][i],
             "seconds_total": batch["seconds_total"][i]} for i in range(4)]


# ----------------------------------------------------------------------------------------------------
# The float32 islands

class RecordsDtypes(TorchFunctionMode):
    """Records the dtype of the first argument of every call to one of `names` (torch functions or methods)."""

    def __init__(self, names):
        super().__init__()
        self.names, self.calls = set(names), []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.names and args and torch.is_tensor(args[0]):
            self.calls.append((name, args[0].dtype))
        return func(*args, **(kwargs or {}))


ISLANDS = ("stft", "log", "log10", "log_softmax", "cross_entropy", "mse_loss")


@pytest.mark.parametrize("case", ["autoencoder generator", "autoencoder discriminator", "clap", "dit pre-training"])
def test_stfts_and_the_losses_logs_stay_float32_under_autocast(case, tokenizer):
    build, batch, step = CASES[case]
    stage, batch = build(tokenizer), batch()
    with torch.autocast("cpu", dtype=torch.bfloat16), RecordsDtypes(ISLANDS) as mode:
        stage.training_step(batch, step)
    names = {name for name, _ in mode.calls}
    expected = {"autoencoder generator": {"stft", "log"}, "autoencoder discriminator": {"stft"},
                "clap": {"stft", "log10", "cross_entropy"}, "dit pre-training": {"mse_loss"}}[case]
    assert expected <= names, names  # the islands were reached
    assert {dtype for _, dtype in mode.calls} == {torch.float32}, mode.calls


def test_log_mel_is_float32_from_bf16_audio():
    audio = torch.randn(2, 48000, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel = log_mel(audio, ClapModelConfig.tiny())
    assert mel.dtype == torch.float32 and torch.isfinite(mel).all()


# ----------------------------------------------------------------------------------------------------
# The sampler

@pytest.mark.parametrize("sampler", ["dpmpp-2m", "dpmpp-3m-sde"])
def test_sampler_under_bf16_autocast_keeps_float32_sigmas_and_latents(sampler):
    model = dit_model().eval()
    text, _ = FixedText().features(PROMPTS[:2])
    cond = model.condition(text, torch.tensor([0.0, 1.0]), torch.tensor([10.0, 20.0]))
    sigmas = get_sigmas(8, sigma_max=80.0, sigma_min=0.3)
    results = {}
    for bf16 in (False, True):
        seen = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            denoiser = Denoiser(model, cond, make_uncond(cond), cfg_scale=3.0)
            x_T = init_noise((2, 8, 24), float(sigmas[0]), torch.Generator().manual_seed(4))
            out = sample(denoiser, x_T, sigmas, sampler, generator=torch.Generator().manual_seed(5), progress=False,
                         callback=lambda d: seen.append((d["x"].dtype, d["denoised"].dtype, d["sigma"].dtype)))
        results[bf16] = out
        assert set(seen) == {(torch.float32,) * 3}, set(seen)  # the state, D and the sigmas: float32 islands
    assert torch.isfinite(results[True]).all() and results[True].dtype == torch.float32
    error = ((results[True] - results[False]).norm() / results[False].norm()).item()
    assert 0 < error <= SAMPLE_RTOL, error
