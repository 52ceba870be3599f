"""Losses and discriminator of the snake VAE, and its training stage, at toy sizes on CPU."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from samod.autoencoder_training import (AutoencoderLossConfig, AutoencoderStage, MultiScaleSTFTDiscriminator,
                                      ReconstructionLoss, SemitoneLoss, STFTDiscriminator, discriminator_hinge_loss,
                                      discriminator_optimizer, feature_matching_loss, generator_adversarial_loss,
                                      generator_optimizer, random_gain)
from samod.train import StepBatches, TrainConfig, Trainer, load_weights


@pytest.fixture(scope="module")
def recon():
    return ReconstructionLoss(AutoencoderLossConfig.tiny())


def stereo(samples=4096, seed=0):
    return torch.randn(2, 2, samples, generator=torch.Generator().manual_seed(seed)) * 0.3  # (B, A, T)


# ----------------------------------------------------------------------------------------------------
# Reconstruction loss

def test_reconstruction_loss_zero_when_equal_and_grows_with_noise(recon):
    real = stereo()
    noise = stereo(seed=1)
    assert recon(real, real)[0].item() == 0.0
    losses = [recon(real + level * noise, real)[0].item() for level in (0.01, 0.1, 1.0)]
    assert 0 < losses[0] < losses[1] < losses[2]


def test_reconstruction_loss_finite_on_silence_and_random_audio(recon):
    silence, noise = torch.zeros(1, 2, 4096), stereo()[:1]
    for fake, real in [(silence, silence), (noise, silence), (silence, noise), (noise, noise.flip(-1))]:
        loss, terms = recon(fake, real)
        assert math.isfinite(loss.item()) and all(math.isfinite(t.item()) for t in terms.values())


def test_all_four_stft_terms_are_used(recon):
    real = stereo()
    n = stereo(seed=1)[:, :1] * 0.3  # (B, 1, T): one noise signal
    # swapped channels: L+R unchanged, L-R only changes sign (same magnitudes): only the L and R terms see it
    _, swapped = recon(real.flip(1), real)
    assert swapped["sum_difference"].item() == pytest.approx(0.0, abs=1e-5)
    assert swapped["left"].item() > 0.1 and swapped["right"].item() > 0.1
    # the same noise on both channels leaves L-R intact, opposite noise leaves L+R intact: both move the
    # sum-and-difference term, so the sum and the difference MRSTFTs are each in it
    _, common = recon(real + torch.cat([n, n], 1), real)
    _, opposite = recon(real + torch.cat([n, -n], 1), real)
    assert common["sum_difference"].item() > 0.01 and opposite["sum_difference"].item() > 0.01
    # noise on the left channel only: the right term stays zero
    _, left_only = recon(real + torch.cat([n, 0 * n], 1), real)
    assert left_only["left"].item() > 0.01 and left_only["right"].item() == 0.0
    # the total is weight * (sd + L/2 + R/2)
    doubled = ReconstructionLoss(AutoencoderLossConfig(mrstft_weight=2.0))
    loss, terms = doubled(real + torch.cat([n, -2 * n], 1), real)
    expected = 2.0 * (terms["sum_difference"] + 0.5 * terms["left"] + 0.5 * terms["right"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("weighting", [True, False])
def test_reconstruction_loss_equals_auraloss(weighting):
    """The written-out loss gives auraloss's numbers and gradients (its SumAndDifference and multi-resolution
    STFT losses, as the reference trains with them), from one filter pass and two STFTs per size."""
    import auraloss
    config = AutoencoderLossConfig(perceptual_weighting=weighting)
    ffts = list(config.stft_fft_sizes)
    kwargs = dict(fft_sizes=ffts, hop_sizes=[n // 4 for n in ffts], win_lengths=ffts,
                  perceptual_weighting=weighting, sample_rate=config.sample_rate)
    sd, channel = auraloss.freq.SumAndDifferenceSTFTLoss(**kwargs), auraloss.freq.MultiResolutionSTFTLoss(**kwargs)
    real = stereo(8192)
    fake = (real + 0.3 * stereo(8192, seed=1)).requires_grad_(True)
    loss, terms = ReconstructionLoss(config)(fake, real)
    (grad,) = torch.autograd.grad(loss, fake)
    peer = {"sum_difference": sd(fake, real), "left": channel(fake[:, :1], real[:, :1]),
            "right": channel(fake[:, 1:], real[:, 1:])}
    peer_loss = peer["sum_difference"] + 0.5 * peer["left"] + 0.5 * peer["right"]
    (peer_grad,) = torch.autograd.grad(peer_loss, fake)
    for k in terms:
        assert terms[k].item() == pytest.approx(peer[k].item(), rel=1e-5), k
    # gradients agree to float rounding, which 1/|X| of the log term amplifies in the quietest bins
    assert (grad - peer_grad).norm() / peer_grad.norm() < 5e-2


def test_reconstruction_loss_rejects_bad_shapes(recon):
    with pytest.raises(ValueError, match="same shape"):
        recon(torch.zeros(1, 2, 4096), torch.zeros(1, 1, 4096))
    with pytest.raises(ValueError, match="longer crops"):
        recon(torch.zeros(1, 2, 1024), torch.zeros(1, 2, 1024))


def tone(hz, seconds=0.5, amplitude=0.5):
    t = torch.arange(int(44100 * seconds)) / 44100
    return (amplitude * torch.sin(2 * math.pi * hz * t))[None, None].repeat(1, 2, 1)  # (1, 2, T)


def test_semitone_loss_finds_the_note_and_hears_a_semitone():
    loss = SemitoneLoss()
    a4 = tone(440.0)
    power = loss.semitone_power(a4)[0, 0].mean(dim=0)  # (bands,)
    assert SemitoneLoss.LOW + int(power.argmax()) == 69  # A4 is MIDI note 69
    for note in range(36, 48):  # the bass octave from C2 (65 Hz): one band per note, although bins are 5.4 Hz apart
        bass = loss.semitone_power(tone(440 * 2 ** ((note - 69) / 12)))[0, 0].mean(dim=0)
        assert SemitoneLoss.LOW + int(bass.argmax()) == note
    assert loss(a4, a4) == 0
    semitone_off, quieter = loss(tone(440 * 2 ** (1 / 12)), a4), loss(tone(440.0, amplitude=0.4), a4)
    noise = loss(torch.randn_like(a4) * 0.1, a4)
    assert quieter < semitone_off < noise  # a wrong note costs more than 2 dB of level, less than noise


def test_semitone_loss_joins_the_generator_loss_only_when_weighted():
    audio = stereo(16384)
    plain, weighted = tiny_stage(), tiny_stage(semitone_weight=1.0, semitone_fft=4096)
    assert plain.semitone_loss is None and "semitone" not in plain.training_step(audio, 0)[2]
    _, loss, numbers = weighted.training_step(audio, 0)
    assert numbers["semitone"] > 0
    loss.backward()
    assert weighted.autoencoder.conv.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------------
# Discriminator

def test_discriminator_shapes_per_scale_and_gradients():
    ffts = (2048, 1024, 512, 256, 128)
    disc = MultiScaleSTFTDiscriminator(ffts, filters=8)
    audio = stereo(8192).requires_grad_()
    logits, features = disc(audio)
    assert len(logits) == len(features) == 5
    for n_fft, logit, maps in zip(ffts, logits, features):
        frames = (8192 - n_fft) // (n_fft // 4) + 1
        bins = [n_fft // 2 + 1]
        for _ in range(3):  # three convs with stride 2 over frequency, kernel 9, padding 4
            bins.append((bins[-1] - 1) // 2 + 1)
        assert logit.shape == (2, 1, frames, bins[-1])
        assert [m.shape for m in maps] == [(2, 8, frames, f) for f in bins + bins[-1:]]
    sum(x.sum() for x in logits).backward()
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    for name, p in disc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_discriminator_input_is_the_normalised_complex_stft():
    scale = STFTDiscriminator(256, filters=4)
    audio = stereo(2048)
    z = scale.spectrogram(audio)  # (B, 2A, N, F)
    window = torch.hann_window(256)
    left = torch.stft(audio[:, 0], 256, 64, window=window, center=False, return_complex=True)  # (B, F, N)
    left = left / window.pow(2).sum().sqrt()
    assert z.shape == (2, 4, 29, 129)
    assert torch.allclose(z[:, 0], left.real.transpose(1, 2), atol=1e-6)  # channel 0: real part of L
    assert torch.allclose(z[:, 2], left.imag.transpose(1, 2), atol=1e-6)  # channel 2: imaginary part of L


def test_discriminator_weight_norm_and_input_checks():
    disc = MultiScaleSTFTDiscriminator((256,), filters=4)
    names = [n for n, _ in disc.named_parameters()]
    assert any("original0" in n for n in names) and any("original1" in n for n in names)  # g and v
    with pytest.raises(ValueError, match="at least 256 samples"):
        disc(torch.zeros(1, 2, 100))


# ----------------------------------------------------------------------------------------------------
# Adversarial losses

def test_hinge_losses_on_hand_made_logits():
    real = [torch.tensor([2.0, 0.5]), torch.tensor([[1.0]])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([[0.5]])]
    # scale 1: mean(relu(1 - [2, .5])) = .25, mean(relu(1 + [-2, 0])) = .5; scale 2: 0 + 1.5
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(0.75 + 1.5)
    assert generator_adversarial_loss(fake).item() == pytest.approx(1.0 - 0.5)  # -(-1) - 0.5


def test_feature_matching():
    real = [[torch.ones(2, 3), torch.zeros(4)], [torch.full((5,), 2.0)]]
    assert feature_matching_loss(real, real).item() == 0.0
    fake = [[torch.zeros(2, 3), torch.zeros(4)], [torch.zeros(5)]]
    # scale 1: mean over layers of (1, 0) = 0.5; scale 2: 2.0; summed over scales
    assert feature_matching_loss(real, fake).item() == pytest.approx(2.5)


# ----------------------------------------------------------------------------------------------------
# Presets and the stage

def test_presets_match_the_reference_config():
    paper = AutoencoderLossConfig.paper()
    assert paper.stft_fft_sizes == (2048, 1024, 512, 256, 128, 64, 32)
    assert paper.disc_fft_sizes == (2048, 1024, 512, 256, 128) and paper.disc_filters == 64
    assert (paper.mrstft_weight, paper.adversarial_weight, paper.feature_matching_weight, paper.kl_weight) == \
        (1.0, 0.1, 5.0, 1e-4)
    assert AutoencoderLossConfig.tiny().disc_filters == 16 and AutoencoderLossConfig.small().disc_filters == 32
    gen, disc = generator_optimizer("paper"), discriminator_optimizer("paper")
    assert (gen.lr, disc.lr, gen.betas, gen.weight_decay) == (1.5e-4, 3e-4, (0.8, 0.99), 1e-3)
    assert (gen.inv_gamma, gen.power, gen.warmup) == (200_000, 0.5, 0.999)
    assert generator_optimizer("tiny").warmup == 0.99
    with pytest.raises(ValueError, match="tiny, small or paper"):
        generator_optimizer("huge")


class DummyAutoencoder(nn.Module):
    """The autoencoder interface at its smallest: one conv, kl = 0 (but part of the graph)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, audio):  # (B, 2, T) -> reconstruction (B, 2, T), scalar kl
        y = self.conv(audio)
        return SimpleNamespace(reconstruction=y, kl=(y ** 2).mean() * 0)


def tiny_stage(discriminator_start=0, **losses):
    torch.manual_seed(0)
    config = AutoencoderLossConfig(disc_filters=4, disc_fft_sizes=(512, 256, 128),
                                   discriminator_start=discriminator_start, **losses)
    return AutoencoderStage(DummyAutoencoder(), config, generator_optimizer("tiny"),
                            discriminator_optimizer("tiny"))


def test_stage_alternates_generator_and_discriminator():
    stage = tiny_stage()
    assert [stage.optimizer_for(s) for s in range(4)] == ["generator", "discriminator"] * 2
    late = tiny_stage(discriminator_start=3)
    assert [late.optimizer_for(s) for s in range(6)] == \
        ["generator"] * 3 + ["discriminator", "generator", "discriminator"]
    assert set(stage.modules()) == {"autoencoder", "discriminator"} and stage.ema_modules() == ["autoencoder"]

    audio = stereo(4096)
    name, loss, numbers = stage.training_step({"audio": audio}, 1)  # discriminator step
    assert name == "discriminator" and "disc/real_logit" in numbers
    loss.backward()
    assert stage.autoencoder.conv.weight.grad is None  # only the discriminator learns here
    assert all(p.grad is not None for p in stage.discriminator.parameters())

    name, loss, numbers = stage.training_step(audio, 2)  # generator step, plain tensor batch
    assert name == "generator" and {"adversarial", "feature_matching", "kl", "mrstft/left"} <= set(numbers)
    stage.discriminator.zero_grad()
    loss.backward()
    assert stage.autoencoder.conv.weight.grad.abs().sum() > 0

    _, _, warmup_numbers = late.training_step(audio, 0)  # before discriminator_start: no adversarial terms
    assert "adversarial" not in warmup_numbers


def test_stage_trains_end_to_end_with_the_trainer(tmp_path):
    stage = tiny_stage()
    audio = torch.randn(4, 2, 8192, generator=torch.Generator().manual_seed(0)) * 0.1
    dataset = [{"audio": a} for a in audio]
    trainer = Trainer(stage, TrainConfig(steps=4, log_every=1, progress=False, device="cpu"), tmp_path)
    before = stage.autoencoder.conv.weight.clone()
    history = trainer.fit(StepBatches(dataset, batch_size=2))
    assert trainer.optimizer_steps == {"generator": 2, "discriminator": 2} and trainer.bad_steps == 0
    last = history[-1]
    for key in ("loss/generator", "loss/discriminator", "mrstft/sum_difference", "adversarial",
                "feature_matching", "kl"):
        assert math.isfinite(last[key]), key
    assert not torch.equal(stage.autoencoder.conv.weight, before)
    weights = load_weights(tmp_path / "last.safetensors", "autoencoder")
    DummyAutoencoder().load_state_dict(weights)


class TwoPartAutoencoder(nn.Module):
    """An encoder and a decoder, named as in samod.autoencoder.Autoencoder."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = nn.Conv1d(2, 2, 3, padding=1), nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, audio):
        y = self.decoder(self.encoder(audio))
        return SimpleNamespace(reconstruction=y, kl=(y ** 2).mean() * 0)


def test_a_frozen_encoder_keeps_its_weights_and_ema_while_the_decoder_learns(tmp_path):
    torch.manual_seed(0)
    config = AutoencoderLossConfig(disc_filters=4, disc_fft_sizes=(512, 256, 128), discriminator_start=10 ** 9)
    stage = AutoencoderStage(TwoPartAutoencoder(), config, generator_optimizer("tiny"), discriminator_optimizer("tiny"),
                             train_encoder=False)
    encoder = {k: v.clone() for k, v in stage.autoencoder.encoder.state_dict().items()}
    decoder = stage.autoencoder.decoder.weight.clone()
    audio = torch.randn(4, 2, 8192, generator=torch.Generator().manual_seed(0)) * 0.1
    Trainer(stage, TrainConfig(steps=3, progress=False, device="cpu"), tmp_path).fit(
        StepBatches([{"audio": a} for a in audio], batch_size=2))
    for name, value in encoder.items():
        assert torch.equal(stage.autoencoder.encoder.state_dict()[name], value), name  # bit for bit
    ema = load_weights(tmp_path / "last.safetensors", "autoencoder")
    assert all(torch.equal(ema[f"encoder.{k}"], v) for k, v in encoder.items())  # so are the exported weights
    assert not torch.equal(stage.autoencoder.decoder.weight, decoder)


def test_recipe_trains_saves_loads_and_scores(tmp_path, monkeypatch):
    """train_autoencoder on a 4-song corpus with a micro recipe, then load_autoencoder and table5."""
    from dataclasses import replace

    from data_prep.synth import build_corpus
    from samod.autoencoder import AutoencoderConfig
    from samod.autoencoder_evaluation import table5
    from samod.autoencoder_training import AutoencoderRecipe, train_autoencoder
    from samod.weights import load_autoencoder
    from samod.data import read_metadata
    from samod.profiles import get_profile

    monkeypatch.setenv("SAMOD_HOME", str(tmp_path))
    profile = get_profile("tiny")
    build_corpus(profile.corpus_dir, 9, seed=3, min_seconds=8, max_seconds=12, renderer="tinysoundfont",
                 progress=False)
    recipe = replace(AutoencoderRecipe.tiny(), model=AutoencoderConfig(channels=2, latent_dim=4),
                     losses=replace(AutoencoderRecipe.tiny().losses, disc_filters=2, discriminator_start=2),
                     steps=4, batch_size=2, crop_samples=8192)
    with pytest.raises(FileNotFoundError, match="no trained autoencoder"):
        load_autoencoder(profile)
    model, history = train_autoencoder(recipe, profile, progress=False)
    assert [h["step"] for h in history] == [1, 2, 3, 4] and "loss/discriminator" in history[-1]
    again, history2 = train_autoencoder(recipe, profile, progress=False)  # finished: loads, trains no more
    assert len(history2) == 4
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not model.training and model.config == recipe.model
    rows, details = table5(model, read_metadata(profile.corpus_dir / "metadata.jsonl")[:2], seconds=2.0,
                           start=1.0, progress=False)
    assert [r["latent_channels"] for r in rows] == [4, None, None, None]
    assert rows[3]["si_sdr"] == -80.0 and details[rows[0]["model"]]["n_files"] == 2
    assert all(0.0 <= r["chroma_identification"] <= 1.0 and "midi_agreement" in r for r in rows)
    assert 0.0 < details["midi_agreement_ceiling"] <= 1.0  # the corpus's own songs against their MIDI


# ----------------------------------------------------------------------------------------------------
# Training choices: data-dependent initialisation, random gain, the short live recipe

def songs_like(n=3, samples=8192, seed=0):
    """(n, 2, samples) of different decaying tone bursts: inputs that differ in pitch, timing and level."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 44100
    out = []
    for _ in range(n):
        f = 110 * 2 ** (torch.randint(0, 36, (1,), generator=g).item() / 12)
        onset = torch.rand(1, generator=g).item() * t[-1].item() / 2
        env = torch.where(t > onset, torch.exp(-(t - onset) * 8), torch.zeros_like(t))
        out.append(torch.stack([env * torch.sin(2 * math.pi * f * t)] * 2) * (0.2 + 0.3 * torch.rand(1, generator=g)))
    return torch.stack(out)


def test_data_dependent_init_makes_the_untrained_autoencoder_follow_its_input():
    from samod.autoencoder import Autoencoder, AutoencoderConfig, vae_bottleneck
    from samod.autoencoder_training import data_dependent_init

    songs = songs_like()

    def reconstructions(model):
        with torch.no_grad():
            return model.decode(model.encode(songs, sample=False))  # (3, 2, T): posterior means decoded

    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(channels=4, latent_dim=8))
    default = reconstructions(model)
    # torch's initialisation: the outputs for different songs are nearly the same (the biases' constant)
    assert (default[0] - default[1]).std() < 0.05 * default.std()
    factors = data_dependent_init(model, songs)
    assert len(factors) == sum(isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) for m in model.modules())
    d = model.config.latent_dim
    assert all(m.bias is None or not m.bias.any() for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and m is not model.encoder.proj)
    assert not model.encoder.proj.bias[:d].any()  # the means' biases are zero too; the scales' set the std
    with torch.no_grad():
        _, mean, std, _ = vae_bottleneck(model.encode_distribution(songs))
    assert abs(mean.std().item() - 1) < 0.1 and std.mean().item() == pytest.approx(0.005, rel=0.1)
    after = reconstructions(model)
    assert (after[0] - after[1]).std() > 0.5 * after.std()  # now each output is its own
    assert abs(after.std().item() / songs.std().item() - 1) < 0.05  # at the level of the batch it was fitted on
    with torch.no_grad():  # zero biases: silence in, silence out (the posterior mean; a sample adds 0.005 noise)
        assert model.decode(model.encode(torch.zeros(1, 2, 8192), sample=False)).abs().max() == 0


def test_random_gain_scales_each_example_within_its_range():
    audio = torch.ones(64, 2, 100)
    torch.manual_seed(0)
    out = random_gain(audio, 40.0)
    gains_db = 20 * torch.log10(out[:, 0, 0])
    assert torch.equal(out, out[:, :1, :1].expand_as(out))  # one gain per example, both channels
    assert gains_db.min() >= -40 and gains_db.max() <= 0 and gains_db.std() > 5
    assert torch.equal(random_gain(audio, 0.0), audio)


def test_shortened_recipe_keeps_the_adversary_at_the_same_fraction():
    from samod.autoencoder_training import AutoencoderRecipe

    recipe = AutoencoderRecipe.tiny()
    short = recipe.shortened(120)
    assert short.steps == 120 and short.model == recipe.model and short.gain_db == recipe.gain_db
    assert short.losses.discriminator_start / short.steps == pytest.approx(
        recipe.losses.discriminator_start / recipe.steps, abs=0.01)
