"""The demo page (samod/demo_page.py), built from a stand-in pipeline of sine waves: every file it links
exists next to it, prompts are escaped, nothing points at the network, the FLAC files have their lengths;
and once from samod's own Pipeline with random weights at toy sizes."""
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from demo_stand_in import PROMPTS, SinePipeline, build_stand_in_page
from samod.demo_page import build_demo_page, notes_rows


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return build_stand_in_page(tmp_path_factory.mktemp("demo"))


def sources(text: str, tag: str) -> list[str]:
    return re.findall(rf'<{tag}\b[^>]*\bsrc="([^"]+)"', text)


def test_page_is_written_with_every_section(page):
    text = page.read_text()
    assert page.name == "index.html"
    for heading in ("Text to music", "Variable length", "Audio to audio", "Autoencoder reconstructions",
                    "Memorization candidates"):
        assert f"<h2>{heading}</h2>" in text
    assert "abc123" in text and "tiny" in text  # the header names the profile and the weights' provenance


def test_every_linked_file_exists_next_to_the_page(page):
    text = page.read_text()
    audio, images = sources(text, "audio"), sources(text, "img")
    # 2 prompts + 2 lengths + (input, output) + (original, reconstruction) + generation and 1 neighbour
    assert len(audio) == 10 and len(images) == 10
    for src in audio + images:
        assert "/" not in src and (page.parent / src).is_file(), src


def test_prompts_are_escaped(page):
    text = page.read_text()
    assert "<script>" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "song_007 &lt;jazz&gt;" in text


def test_nothing_points_at_the_network(page):
    assert not re.search(r"https?://", page.read_text())


def test_flac_files_have_the_requested_lengths(page):
    for name, seconds in [("text_to_music_0", 1.5), ("length_0", 1.0), ("length_1", 2.5), ("a2a_output_0", 2.0),
                          ("reconstruction_0", 2.0)]:
        audio, rate = sf.read(page.parent / f"{name}.flac")
        assert rate == 44100 and audio.shape == (round(seconds * 44100), 2), name
        assert np.abs(audio).max() > 0.1, name


def test_reconstruction_numbers_are_measured_or_passed_in(page):
    text = page.read_text()
    assert "passed in by the test" in text and "2.2" in text
    assert "stft_distance" in text and "si_sdr" in text  # measured on the song shown
    assert "chroma cosine: reconstruction" in text and "rhythm only" in text  # the notes, beside two baselines


def test_notes_rows_read_table5_and_say_what_is_kept(tmp_path):
    rows = [{"model": "samod VAE (tiny)", "n_files": 16, "identification": 0.94, "chroma_identification": 0.06,
             "chroma_motion": 0.27, "midi_agreement": 0.07},
            {"model": "low-pass", "n_files": 16, "identification": 1.0, "chroma_identification": 1.0,
             "chroma_motion": 0.97, "midi_agreement": 0.5}]
    path = tmp_path / "table5_autoencoder.json"
    path.write_text(json.dumps({"rows": rows}))
    table, note = notes_rows(path)
    assert [r["chroma_identification"] for r in table] == [0.06, 1.0]
    assert "not yet its notes" in note and "chance 0.06" in note
    rows[0]["chroma_identification"] = 0.9
    path.write_text(json.dumps({"rows": rows}))
    assert "It keeps the notes" in notes_rows(path)[1]
    assert notes_rows(tmp_path / "missing.json") == (None, "")


def test_optional_sections_are_left_out(tmp_path):
    text = build_demo_page(SinePipeline(), tmp_path, prompts=PROMPTS[:1], seconds=1.0, lengths=[], steps=2,
                           progress=False).read_text()
    assert "<h2>Text to music</h2>" in text
    assert all(h not in text for h in ("Variable length", "Audio to audio", "Autoencoder", "Memorization"))


def test_lengths_beyond_the_window_are_refused(tmp_path):
    with pytest.raises(ValueError, match="window"):
        build_demo_page(SinePipeline(), tmp_path, prompts=PROMPTS[:1], seconds=1.0, lengths=[7.0], progress=False)


class TextStub(torch.nn.Module):
    """features(prompts) -> ((B, S, E) tokens, (B, S) mask), one fixed random token row per prompt length."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def features(self, prompts):
        tokens = torch.stack([torch.randn(4, self.width, generator=torch.Generator().manual_seed(len(p)))
                              for p in prompts])  # (B, S, E)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool)


def test_a_random_samod_pipeline_builds_the_page(tmp_path):
    """samod's own Pipeline (random weights, toy sizes): the page uses only its public calls."""
    from dataclasses import replace

    from samod.autoencoder import Autoencoder, AutoencoderConfig
    from samod.diffusion import DiffusionModel
    from samod.dit import DiTConfig
    from samod.generation import Pipeline

    torch.manual_seed(0)
    autoencoder = Autoencoder(replace(AutoencoderConfig.tiny(), channels=4, latent_dim=8)).eval()
    dit = replace(DiTConfig.tiny(), width=32, depth=1, heads=2, cross_kv_heads=1, latent_channels=8)
    model = DiffusionModel(dit).eval()
    pipeline = Pipeline(autoencoder, model, TextStub(dit.cond_dim), window_frames=64)  # 2.97 s window
    song = {"name": "noise", "audio": 0.1 * np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32)}
    index = build_demo_page(pipeline, tmp_path, prompts=PROMPTS, seconds=1.0, lengths=[0.5, 2.0], songs=[song],
                            reconstruction_seconds=0.5, steps=2, progress=False)
    text = index.read_text()
    for src in sources(text, "audio") + sources(text, "img"):
        assert (tmp_path / src).is_file(), src
    for name, seconds in [("text_to_music_1", 1.0), ("length_1", 2.0), ("a2a_output_0", 1.0),
                          ("original_0", 0.5), ("reconstruction_0", 0.5)]:  # the first 0.5 s reconstructed
        assert sf.info(str(tmp_path / f"{name}.flac")).frames == round(seconds * 44100), name


class NearestStandIn:
    """A stand-in TrainingSetSearch: every generation's nearest training songs are songs 2, 0 and 1 of three sines."""
    threshold = 0.95

    def __init__(self, folder):
        from samod.audio import save_audio
        from demo_stand_in import song
        self.embedder = type("Embedder", (), {"name": "a stand-in embedder"})()
        self.paths = []
        for i, frequency in enumerate((220.0, 330.0, 440.0)):
            self.paths.append(folder / f"training_{i}.wav")
            save_audio(self.paths[-1], song(3.0, frequency))

    def nearest(self, files, k=3):
        return [[{"index": i, "name": f"training song {i}", "path": self.paths[i], "similarity": s}
                 for i, s in [(2, 0.97), (0, 0.5), (1, 0.1)][:k]] for _ in files]


def test_memorization_section_from_a_training_search(tmp_path):
    search = NearestStandIn(tmp_path)
    text = build_demo_page(SinePipeline(), tmp_path / "page", prompts=PROMPTS, seconds=1.0, lengths=[], steps=2,
                           training_search=search, neighbour_seconds=2.0, progress=False).read_text()
    assert "<h2>Memorization candidates</h2>" in text and "a stand-in embedder" in text and "0.950" in text
    assert text.count("<b>as close as a replica</b>: yes") == 2 and text.count("<b>as close as a replica</b>: no") == 4
    # each generation's player is the text-to-music one; each training song is written once, 2 s of it
    audio = sources(text, "audio")
    assert sorted(set(audio)) == sorted(["text_to_music_0.flac", "text_to_music_1.flac", "training_song_0.flac",
                                         "training_song_1.flac", "training_song_2.flac"])
    assert sf.info(str(tmp_path / "page" / "training_song_2.flac")).frames == 2 * 44100


class CountingSinePipeline(SinePipeline):
    """SinePipeline that records each generate call's prompt and seconds."""
    def __init__(self):
        self.calls, self.depth = [], 0

    def generate(self, prompt, seconds=None, **kwargs):
        if self.depth == 0:  # not SinePipeline's own call per prompt of a list
            self.calls.append((prompt, seconds))
        self.depth += 1
        try:
            return super().generate(prompt, seconds, **kwargs)
        finally:
            self.depth -= 1


def test_a_length_already_rendered_is_not_generated_again(tmp_path):
    pipeline = CountingSinePipeline()
    build_demo_page(pipeline, tmp_path, prompts=PROMPTS, seconds=1.0, lengths=[1.0, 2.0], steps=2, progress=False)
    assert pipeline.calls == [(PROMPTS, 1.0), (PROMPTS[0], 2.0)]  # the first prompt at 1 s is text_to_music_0
    reused, rendered = sf.read(tmp_path / "length_0.flac")[0], sf.read(tmp_path / "text_to_music_0.flac")[0]
    assert np.array_equal(reused, rendered)
    build_demo_page(pipeline, tmp_path, prompts=PROMPTS, seconds=1.0, lengths=[1.0], length_prompt="another",
                    steps=2, progress=False)
    assert pipeline.calls[-1] == ("another", 1.0)  # another prompt is generated
