"""CLAP (samod.clap) and the T5 conditioner (samod.t5) at toy sizes on CPU; nothing is downloaded."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import ClapFeatureExtractor, ClapModel, T5EncoderModel

from samod.clap import (ClapEncoder, ClapModelConfig, audio_inputs, contrastive_loss, log_mel, positive_targets,
                        to_clap_rate, train_clap_tokenizer)
from samod.clap_evaluation import evaluate_clap
from samod.clap_training import ClapRecipe, ClapStage, corpus_prompts, train_clap
from samod.weights import load_clap
from samod.t5 import T5Conditioner, T5ConditionerConfig, train_t5_tokenizer
from samod.train import OptimizerConfig, StepBatches, TrainConfig, Trainer, load_weights

RECORDS = [{"path": f"{i}.flac", "seconds": 30, "genre": genre, "instruments": instruments, "moods": moods,
            "bpm": bpm, "key": key}
           for i, (genre, instruments, moods, bpm, key) in enumerate([
               ("bossa nova", ["Flute", "Nylon Guitar"], ["calm", "warm"], 133, "A minor"),
               ("metal", ["Drums", "Distortion Guitar"], ["aggressive", "dark"], 166, "Eb minor"),
               ("ambient", ["Pad 2 (warm)", "Strings"], ["dreamy"], 68, "D lydian"),
               ("hip hop", ["Drums", "Electric Bass (finger)"], ["cool"], 89, "C major")])]
PROMPTS = ["Genre: metal|BPM: 166", "calm, flute, bossa nova", "AMBIENT", "hip hop, 89, c major"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_clap_tokenizer(corpus_prompts(RECORDS, draws=64), vocab_size=1024)


@pytest.fixture(scope="module")
def encoder(tokenizer):
    torch.manual_seed(0)
    return ClapEncoder(ClapModelConfig.tiny(), tokenizer).eval()


def tones(seconds: float, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """(B, 2, T) stereo 44.1 kHz sines of different pitches plus a little noise."""
    t = torch.arange(int(seconds * 44100)) / 44100
    noise = torch.randn(batch, 2, t.numel(), generator=torch.Generator().manual_seed(seed)) * 0.01
    return torch.stack([torch.sin(2 * math.pi * 110 * 2 ** b * t) for b in range(batch)])[:, None] * 0.5 + noise


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------------
# Configs and parameter counts

def test_presets_build_and_count_parameters():
    with torch.device("meta"):  # no memory: the paper model's parameters counted, not allocated
        paper = ClapModel(ClapModelConfig.paper().to_transformers())
        t5_base = T5EncoderModel(T5ConditionerConfig.paper().to_transformers())
    assert count(paper.text_model) == 124_645_632  # RoBERTa-base: paper 1 Table 1 lists 125M
    assert count(paper.audio_model) == 67_848_024  # HTSAT-base with fusion
    assert count(t5_base) == 109_628_544  # Stable Audio Open: 109M
    tiny = ClapModel(ClapModelConfig.tiny().to_transformers())
    assert count(tiny) < 2_000_000 and tiny.config.audio_config.enable_fusion
    for preset in (ClapModelConfig.tiny(), ClapModelConfig.small(), ClapModelConfig.paper()):
        assert preset.fusion and preset.max_tokens == 77
        assert ClapModelConfig.from_transformers(preset.to_transformers(), {
            "feature_size": preset.mel_bins, "max_length_s": preset.window_seconds}) == preset
    assert ClapModelConfig.paper().window_frames == 1001  # 10 s at hop 480, centred


@pytest.mark.parametrize("change, message", [
    ({"window_size": 8}, "window_size"), ({"window_seconds": 6.0}, "image holds"),
    ({"text_heads": 3}, "divisible"), ({"spec_size": 100}, "multiple of mel_bins"),
    ({"vocab_size": 100}, "byte"), ({"audio_heads": (1, 2)}, "one entry per stage")])
def test_config_rejects_inconsistent_numbers(change, message):
    with pytest.raises(ValueError, match=message):
        replace(ClapModelConfig.tiny(), **change)


# ----------------------------------------------------------------------------------------------------
# Audio front end

def test_front_end_matches_transformers_feature_extractor():
    """Short clips (repeat-padded to W) at the paper's front end equal ClapFeatureExtractor's features."""
    config = ClapModelConfig.paper()
    audio = tones(3.0)
    ours = audio_inputs(audio, config, torch.Generator().manual_seed(0))
    extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=10,
                                     fft_window_size=1024, frequency_min=50, frequency_max=14000)
    mono = to_clap_rate(audio).double().numpy()  # (B, T'): our resampling, then theirs
    theirs = extractor(list(mono), sampling_rate=48000, return_tensors="pt")["input_features"]
    assert ours["input_features"].shape == theirs.shape == (2, 4, 1001, 64)
    torch.testing.assert_close(ours["input_features"], theirs.float(), atol=2e-3, rtol=0)
    assert ours["is_longer"].shape == (2, 1) and ours["is_longer"].sum() == 1  # one marked, as LAION-CLAP


def test_fusion_views_global_and_one_crop_per_third():
    config = ClapModelConfig.paper()
    audio = tones(16.0, batch=1)
    out = audio_inputs(audio, config, torch.Generator().manual_seed(1))
    features = out["input_features"][0]  # (4, 1001, 64)
    assert out["is_longer"].all()
    mel = log_mel(to_clap_rate(audio), config)[0]  # (1601, 64)
    extractor = ClapFeatureExtractor(feature_size=64, frequency_min=50, frequency_max=14000)
    np.random.seed(0)
    theirs = extractor._random_mel_fusion(mel.double().numpy(), mel.shape[0], 1001)  # numpy's global RNG
    torch.testing.assert_close(features[0], torch.from_numpy(theirs[0]).float(), atol=2e-3, rtol=0)
    positions = mel.shape[0] - 1001 + 1
    for k in (1, 2, 3):  # local view k is an exact crop from the k-th third of the clip
        errors = torch.stack([(mel[s:s + 1001] - features[k]).abs().max() for s in range(positions)])
        start = int(errors.argmin())
        assert errors[start] == 0 and (k - 1) * positions // 3 <= start < k * positions // 3 + 1
    again = audio_inputs(audio, config, torch.Generator().manual_seed(1))["input_features"]
    other = audio_inputs(audio, config, torch.Generator().manual_seed(2))["input_features"]
    assert torch.equal(again, out["input_features"]) and not torch.equal(other, again)


def test_tiny_front_end_shapes_and_bad_input(encoder):
    out = encoder.audio_inputs(tones(10.0, batch=3))  # 10 s > W = 5 s: every clip fused
    assert out["input_features"].shape == (3, 4, 501, 32) and out["is_longer"].all()
    embeddings = encoder.audio_embeddings(tones(2.0), torch.Generator().manual_seed(0))  # shorter than W
    assert embeddings.shape == (2, 128) and torch.allclose(embeddings.norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="batch, channels, samples"):
        encoder.audio_inputs(torch.zeros(2, 44100))
    silence = encoder.audio_inputs(torch.zeros(1, 2, 44100))["input_features"]
    assert torch.all(silence == -100.0)  # the dB floor, finite


# ----------------------------------------------------------------------------------------------------
# Tokenizer and text features

def test_tokenizer_round_trip_specials_and_length(tokenizer, encoder):
    tokens = encoder.tokenize(PROMPTS + ["", "Ünïcödé — 日本語 🎷"])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    assert ids.shape == mask.shape == (6, 77)
    assert (ids[:, 0] == 0).all() and ids[4, :3].tolist() == [0, 2, 1]  # <s> </s> <pad>: the empty prompt
    assert mask[4].sum() == 2 and (ids[mask == 0] == 1).all()  # padding is id 1 and masked
    for row, text in zip(ids, PROMPTS + ["", "Ünïcödé — 日本語 🎷"]):
        assert tokenizer.decode(row, skip_special_tokens=True) == text  # byte-level: nothing lost
    assert 3 not in ids  # no <unk>, even for emoji
    assert len(tokenizer("Genre: metal")["input_ids"]) < len("Genre: metal")  # merges were learnt
    with pytest.raises(TypeError, match="list of strings"):
        encoder.tokenize("Genre: metal")
    with pytest.raises(ValueError, match="pads with id 0"):  # T5's specials: <pad> is 0, RoBERTa's is 1
        ClapEncoder(ClapModelConfig.tiny(), train_t5_tokenizer(PROMPTS * 2, 300))


def test_long_prompt_is_truncated_with_a_warning(encoder):
    with pytest.warns(UserWarning, match="truncated to 77"):
        tokens = encoder.tokenize(["metal " * 1666 + "end"])  # 10,000 characters
    assert tokens["input_ids"].shape == (1, 77) and tokens["input_ids"][0, -1] == 2  # still ends with </s>
    with pytest.warns(UserWarning, match="truncated"):
        features, mask = encoder.features(["x" * 10_000])
    assert features.shape == (1, 77, 128) and mask.all()


def test_text_features_are_the_next_to_last_layer_unmasked(encoder):
    prompts = PROMPTS + ["", "Ünïcödé — 日本語", PROMPTS[0]]
    with torch.no_grad():
        features, mask = encoder.features(prompts)
        hidden = encoder.model.text_model(**encoder.tokenize(prompts), output_hidden_states=True).hidden_states
    assert features.shape == (7, 77, 128) and mask.shape == (7, 77) and mask.dtype == torch.bool and mask.all()
    assert len(hidden) == 3 and torch.equal(features, hidden[1]) and not torch.allclose(features, hidden[2])
    assert torch.isfinite(features).all() and features[4, 10:].abs().sum() > 0  # padding is not zeroed
    assert torch.equal(features[0], features[6])  # a duplicate prompt, the same features
    assert encoder.width == 128 and encoder.max_tokens == 77


# ----------------------------------------------------------------------------------------------------
# Files

def test_save_load_round_trip(tmp_path, encoder):
    encoder.save(tmp_path / "clap")
    loaded = ClapEncoder.load(tmp_path / "clap")
    audio = tones(7.0)
    with torch.no_grad():
        assert torch.equal(loaded.text_features(PROMPTS), encoder.text_features(PROMPTS))
        assert torch.equal(loaded.text_embeddings(PROMPTS), encoder.text_embeddings(PROMPTS))
        assert torch.equal(loaded.audio_embeddings(audio, torch.Generator().manual_seed(3)),
                           encoder.audio_embeddings(audio, torch.Generator().manual_seed(3)))
    assert loaded.config == encoder.config and not loaded.training
    with pytest.raises(FileNotFoundError, match="samod_clap.json; model.safetensors; tokenizer.json"):
        ClapEncoder.load(tmp_path / "empty")


def test_from_pretrained_local_reads_a_transformers_checkpoint(tmp_path, tokenizer, encoder):
    """What a user has after downloading laion/clap-htsat-fused: config.json, weights, tokenizer, preprocessor."""
    folder = tmp_path / "laion"
    encoder.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ClapFeatureExtractor(feature_size=32, max_length_s=5, frequency_min=50).save_pretrained(folder)
    loaded = ClapEncoder.from_pretrained_local(folder)
    assert loaded.config == encoder.config  # front end from preprocessor_config.json, towers from config.json
    with torch.no_grad():
        assert torch.equal(loaded.text_features(PROMPTS), encoder.text_features(PROMPTS))
        assert torch.equal(loaded.audio_embeddings(tones(6.0), torch.Generator().manual_seed(0)),
                           encoder.audio_embeddings(tones(6.0), torch.Generator().manual_seed(0)))
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors or pytorch_model.bin.*tokenizer.json"):
        ClapEncoder.from_pretrained_local(tmp_path / "partial")


# ----------------------------------------------------------------------------------------------------
# Contrastive loss

def unit(rows: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(rows, 8, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_loss_without_duplicates_is_clip():
    a, t, scale = unit(5, 0), unit(5, 1), torch.tensor(14.0)
    logits = scale * a @ t.T
    expected = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    assert torch.allclose(contrastive_loss(a, t, scale, list("abcde")), expected)
    assert torch.equal(positive_targets(list("abcde")), torch.eye(5))


def test_loss_with_duplicate_captions_against_a_hand_computation():
    prompts = ["metal", "jazz", "METAL"]  # items 0 and 2 share a caption (case is a random augmentation)
    a, t, s = unit(3, 2), unit(3, 3), 10.0
    sim = [[s * float(a[i] @ t[j]) for j in range(3)] for i in range(3)]
    right = [[j for j in range(3) if prompts[j].lower() == prompts[i].lower()] for i in range(3)]

    def direction(logit):  # mean over rows of -sum over right columns of (1/#right) log softmax
        total = 0.0
        for i in range(3):
            log_z = math.log(sum(math.exp(logit(i, k)) for k in range(3)))
            total += -sum(logit(i, j) - log_z for j in right[i]) / len(right[i])
        return total / 3

    hand = (direction(lambda i, j: sim[i][j]) + direction(lambda i, j: sim[j][i])) / 2
    loss = contrastive_loss(a, t, torch.tensor(s), prompts)
    assert loss.item() == pytest.approx(hand, rel=1e-5)
    arange = (F.cross_entropy(s * a @ t.T, torch.arange(3)) + F.cross_entropy(s * t @ a.T, torch.arange(3))) / 2
    assert abs(arange.item() - hand) > 1e-3  # plain CLIP targets would call the duplicate a negative
    assert torch.allclose(positive_targets(prompts), torch.tensor([[.5, 0, .5], [0, 1, 0], [.5, 0, .5]]))
    # perfectly aligned embeddings: duplicates cost exactly log 2 per direction at a huge scale, not infinity
    same = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]]), dim=-1)
    assert contrastive_loss(same, same, torch.tensor(100.0), prompts).item() == pytest.approx(2 / 3 * math.log(2))


# ----------------------------------------------------------------------------------------------------
# Training

def test_stage_reduces_the_loss_on_a_fixed_batch(tmp_path, tokenizer):
    torch.manual_seed(0)
    encoder = ClapEncoder(ClapModelConfig.tiny(), tokenizer)
    stage = ClapStage(encoder, OptimizerConfig(lr=2e-3, weight_decay=1e-3))
    audio = tones(6.0, batch=4)
    dataset = [{"audio": audio[i], "prompt": PROMPTS[i]} for i in range(4)]
    with torch.no_grad():
        encoder.model.logit_scale_a.fill_(10.0)  # above log 100: the step clamps it back
    trainer = Trainer(stage, TrainConfig(steps=16, log_every=1, progress=False, device="cpu"), tmp_path)
    history = trainer.fit(StepBatches(dataset, batch_size=4))
    losses = [h["loss/clap"] for h in history]
    assert all(math.isfinite(x) for x in losses) and trainer.bad_steps == 0
    assert history[0]["logit_scale"] == pytest.approx(100.0, rel=1e-5)
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses
    assert not encoder.model.logit_scale_t.requires_grad  # LAION-CLAP's loss uses logit_scale_a only
    ClapEncoder(ClapModelConfig.tiny(), tokenizer).load_state_dict(load_weights(tmp_path / "last.safetensors", "clap"))


def test_train_clap_on_a_profile_corpus_then_load(tmp_path, monkeypatch):
    from samod.audio import save_audio
    from samod.profiles import get_profile

    monkeypatch.setenv("SAMOD_HOME", str(tmp_path))
    profile = get_profile("tiny")
    (profile.corpus_dir / "audio").mkdir(parents=True)
    lines = []
    for i in range(9):  # 8 training songs, 1 held out
        record = {**RECORDS[i % 4], "id": f"song_{i}", "path": f"audio/song_{i}.flac", "seconds": 7.0}
        save_audio(profile.corpus_dir / record["path"], tones(7.0, batch=i % 4 + 1, seed=i)[-1].numpy())
        lines.append(json.dumps(record))
    (profile.corpus_dir / "metadata.jsonl").write_text("\n".join(lines))
    recipe = replace(ClapRecipe.tiny(), steps=3, batch_size=4, crop_seconds=6.0, prompt_draws=8)
    with pytest.raises(FileNotFoundError, match="no trained CLAP"):
        load_clap(profile)
    encoder, history = train_clap(recipe, profile, progress=False)
    assert [h["step"] for h in history] == [1, 2, 3] and not encoder.training
    again, history2 = train_clap(recipe, profile, progress=False)  # finished: loads, trains no more
    assert len(history2) == 3
    with torch.no_grad():
        assert torch.equal(encoder.text_features(PROMPTS), again.text_features(PROMPTS))
    assert (profile.checkpoint_dir / "clap" / "tokenizer.json").exists()
    records = [json.loads(line) for line in lines]
    records = [{**r, "audio_path": str(profile.corpus_dir / r["path"])} for r in records]
    genres = sorted({r["genre"] for r in records})
    seen = []
    as_is = evaluate_clap(encoder, records, 6.0, genres)
    silenced = evaluate_clap(encoder, records, 6.0, genres, transform=lambda a: seen.append(a.shape) or 0 * a)
    assert seen == [(9, 2, 6 * 44100)]  # the transform sees the crops, before the embedding
    assert not torch.allclose(as_is["audio_embeddings"], silenced["audio_embeddings"])


# ----------------------------------------------------------------------------------------------------
# T5 (Stable Audio Open)

@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(0)
    return T5Conditioner(T5ConditionerConfig.tiny(), train_t5_tokenizer(corpus_prompts(RECORDS, 64), 1024)).eval()


def test_t5_features_zero_on_padding(t5):
    prompts = PROMPTS + ["", "Ünïcödé — 日本語 🎷"]
    with torch.no_grad():
        features, mask = t5.features(prompts)
        raw = t5.model(**{k: v for k, v in t5.tokenizer(prompts, padding="max_length", max_length=128,
                                                            return_tensors="pt").items()}).last_hidden_state
    assert features.shape == (6, 128, 64) and mask.shape == (6, 128) and mask.dtype == torch.bool
    assert (features[~mask] == 0).all() and (features[mask].abs().sum(-1) > 0).all()
    assert torch.equal(features[mask], raw[mask]) and raw[~mask].abs().sum() > 0  # zeroed, not absent
    assert mask[4].sum() == 1  # the empty prompt is one token, </s>
    assert t5.width == 64 and t5.max_tokens == 128
    with pytest.warns(UserWarning, match="truncated to 128"):
        _, long_mask = t5.features(["y" * 10_000])
    assert long_mask.all()


def test_t5_save_load_and_local_pretrained(tmp_path, t5):
    t5.save(tmp_path / "mine")
    with torch.no_grad():
        expected = t5.features(PROMPTS)[0]
        assert torch.equal(T5Conditioner.load(tmp_path / "mine").features(PROMPTS)[0], expected)
        t5.model.save_pretrained(tmp_path / "t5-base")  # what a user has after downloading t5-base
        t5.tokenizer.save_pretrained(tmp_path / "t5-base")
        local = T5Conditioner.from_pretrained_local(tmp_path / "t5-base")
        assert torch.equal(local.features(PROMPTS)[0], expected) and local.config == t5.config
    with pytest.raises(FileNotFoundError, match="tokenizer.json or spiece.model"):
        (tmp_path / "no_tokenizer").mkdir()
        t5.model.save_pretrained(tmp_path / "no_tokenizer")
        T5Conditioner.from_pretrained_local(tmp_path / "no_tokenizer")
