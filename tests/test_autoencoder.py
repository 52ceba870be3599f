"""The snake VAE: shapes, parameter count, parity with diffusers' AutoencoderOobleck, chunking, bad input."""
import dataclasses

import pytest
import torch

from stable_audio_peer import oobleck_to_reference
from samod.autoencoder import (Autoencoder, AutoencoderConfig, SnakeBeta, load_reference_state_dict,
                               to_reference_state_dict, vae_bottleneck)

SMALL = AutoencoderConfig(channels=4, channel_mults=(1, 2), strides=(2, 4), latent_dim=4)  # 8x, for speed


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random (SnakeBeta's zeros and weight norms included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def test_paper_parameter_count_on_meta_device():
    with torch.device("meta"):
        model = Autoencoder(AutoencoderConfig.paper())
    assert model.num_parameters() == 156_112_514
    assert sum(p.numel() for p in model.encoder.parameters()) == 77_989_888
    assert sum(p.numel() for p in model.decoder.parameters()) == 78_122_626


def test_latent_rate_arithmetic():
    cfg = AutoencoderConfig.tiny()
    assert cfg.downsampling == 2048 and cfg.sample_rate == 44100 and cfg.latent_dim == 64
    assert abs(cfg.latent_rate - 21.533) < 1e-3


def test_snake_beta_formula():
    snake = SnakeBeta(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.0, 1.0, -1.0]))
        snake.beta.copy_(torch.tensor([0.0, 0.5, 2.0]))
    x = torch.linspace(-3, 3, 50).repeat(1, 3, 1)  # (1, 3, 50)
    a, b = snake.alpha.exp()[:, None], snake.beta.exp()[:, None]
    expected = x[0] + torch.sin(a * x[0]) ** 2 / (b + 1e-9)
    assert torch.allclose(snake(x)[0], expected)  # training path (autograd)
    with torch.no_grad():
        assert torch.allclose(snake(x)[0], expected, atol=1e-6)  # in-place inference path
        assert torch.equal(x, torch.linspace(-3, 3, 50).repeat(1, 3, 1))  # ... which leaves its input alone


def test_shapes_padding_and_trim():
    model = Autoencoder(SMALL).eval()
    audio = torch.randn(2, 2, 8 * 10 + 3)  # not a multiple of 8
    out = model(audio)
    assert out.latents.shape == (2, 4, 11) and out.reconstruction.shape == audio.shape
    assert out.kl.ndim == 0 and out.kl > 0


def test_kl_matches_the_formula():
    h = torch.randn(3, 8, 5)
    _, mean, std, kl = vae_bottleneck(h, torch.Generator().manual_seed(0))
    expected = (mean ** 2 + std ** 2 - torch.log(std ** 2) - 1).sum(1).mean()
    assert torch.allclose(kl, expected)
    assert torch.allclose(std, torch.nn.functional.softplus(h[:, 4:]) + 1e-4)


def test_bad_input_errors():
    model = Autoencoder(SMALL)
    with pytest.raises(ValueError, match=r"\(batch, 2, samples\)"):
        model(torch.randn(1, 3, 64))
    bad = torch.randn(1, 2, 64)
    bad[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    with pytest.raises(ValueError, match=r"\(batch, 4, frames\)"):
        model.decode(torch.randn(1, 3, 8))


def test_equals_diffusers_autoencoder_oobleck():
    diffusers = pytest.importorskip("diffusers")
    peer = diffusers.AutoencoderOobleck(encoder_hidden_size=2 * SMALL.latent_dim,
                                        downsampling_ratios=list(SMALL.strides),
                                        channel_multiples=list(SMALL.channel_mults),
                                        decoder_channels=SMALL.channels, decoder_input_channels=SMALL.latent_dim,
                                        audio_channels=2).eval()
    # diffusers ties encoder width to 2 x latent (encoder_hidden_size); samod's encoder width is `channels`
    cfg = AutoencoderConfig(channels=2 * SMALL.latent_dim, channel_mults=SMALL.channel_mults, strides=SMALL.strides,
                            latent_dim=SMALL.latent_dim)
    randomised(peer, seed=1)
    n = len(SMALL.strides)
    state = {"pretransform.model." + oobleck_to_reference(k, n): v for k, v in peer.state_dict().items()}
    # decoder width differs from the encoder's in diffusers: build samod's decoder at the peer's width
    model = Autoencoder(cfg)
    model.decoder = Autoencoder(AutoencoderConfig(channels=SMALL.channels, channel_mults=SMALL.channel_mults,
                                                  strides=SMALL.strides, latent_dim=SMALL.latent_dim)).decoder
    load_reference_state_dict(model, state)
    model.eval()
    audio = torch.randn(2, 2, 8 * 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        h_peer = peer.encoder(audio)  # (B, 2D, L)
        h_ours = model.encode_distribution(audio)
        dist = peer.encode(audio).latent_dist
        _, mean, std, _ = vae_bottleneck(h_ours)
        latents = torch.randn(2, SMALL.latent_dim, 32, generator=torch.Generator().manual_seed(3))
        y_peer = peer.decode(latents).sample
        y_ours = model.decode(latents)
    assert (h_ours - h_peer).abs().max() < 1e-5
    assert (mean - dist.mean).abs().max() < 1e-5 and (std - dist.std).abs().max() < 1e-5
    assert (y_ours - y_peer).abs().max() < 1e-5
    assert y_ours.abs().max() > 1e-2  # a real signal, not zeros on both sides


def test_reference_state_dict_round_trip():
    model = randomised(Autoencoder(SMALL), seed=4)
    state = to_reference_state_dict(model)
    assert "pretransform.model.encoder.layers.1.layers.0.layers.1.weight_g" in state
    assert "pretransform.model.decoder.layers.4.weight_v" in state  # decoder.proj of a 2-block model: n + 2
    other = load_reference_state_dict(Autoencoder(SMALL), state)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    del state["pretransform.model.decoder.layers.0.bias"]
    with pytest.raises(KeyError, match="decoder.layers.0.bias"):
        load_reference_state_dict(Autoencoder(SMALL), state)


TINY_WIDTH = AutoencoderConfig(channels=2, channel_mults=(1, 1, 1, 1, 1), latent_dim=4)  # 2048x, narrow: fast


def test_chunked_decode_equals_full_decode_on_five_minutes():
    model = randomised(Autoencoder(TINY_WIDTH), seed=5).eval()
    frames = int(300 * TINY_WIDTH.latent_rate) + 1  # 5 minutes at 21.5 Hz: 6460 latent frames
    latents = torch.randn(1, 4, frames, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = model.decode(latents)
        chunked = model.decode_chunked(latents)  # chunks of 128 latents, overlap 32
    assert chunked.shape == full.shape == (1, 2, frames * 2048)
    assert full.abs().max() > 0.1
    assert (chunked - full).abs().max() < 1e-5


def test_chunked_decode_needs_the_overlap():
    # the decoder sees about +-10 latents: cropping only 1 per edge is measurably wrong
    model = randomised(Autoencoder(TINY_WIDTH), seed=5).eval()
    latents = torch.randn(1, 4, 400, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = model.decode(latents)
        exact = (model.decode_chunked(latents) - full).abs().max()
        model.config = dataclasses.replace(model.config, chunk_overlap=2)
        short = (model.decode_chunked(latents) - full).abs().max()
    assert exact < 1e-5 and short > 20 * exact and short > 1e-5


def test_chunked_encode_equals_full_encode():
    model = randomised(Autoencoder(TINY_WIDTH), seed=7).eval()
    audio = torch.randn(1, 2, 2048 * 300, generator=torch.Generator().manual_seed(8)) * 0.1
    with torch.no_grad():
        full = model.encode(audio, sample=False)
        chunked = model.encode_chunked(audio, sample=False)
    assert chunked.shape == full.shape == (1, 4, 300)
    assert (chunked - full).abs().max() < 1e-5 * max(1.0, full.abs().max().item())


def test_chunked_batches_equal_their_items():
    # on the CPU the chunked paths run one item at a time: a batch gives each item's own result
    model = randomised(Autoencoder(TINY_WIDTH), seed=9).eval()
    latents = torch.randn(3, 4, 300, generator=torch.Generator().manual_seed(10))
    audio = torch.randn(3, 2, 2048 * 200, generator=torch.Generator().manual_seed(11)) * 0.1
    with torch.no_grad():
        decoded, encoded = model.decode_chunked(latents), model.encode_chunked(audio, sample=False)
        for i in range(3):
            assert (decoded[i] - model.decode(latents[i:i + 1])[0]).abs().max() < 1e-5
            assert (encoded[i] - model.encode(audio[i:i + 1], sample=False)[0]).abs().max() < 1e-5
    assert decoded.shape == (3, 2, 300 * 2048) and encoded.shape == (3, 4, 200)
    assert (decoded[0] - decoded[1]).abs().max() > 1e-4  # items are not mixed up or repeated
