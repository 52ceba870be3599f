"""Unit tests of samod/data.py: metadata, prompts (paper 1 §3.1), cropping, padding, bad files."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from samod.audio import AudioError
from samod.data import SongDataset, build_prompt, prompt_fields, read_metadata

SR = 44100


def sine(seconds: float, freq: float = 440.0, sr: int = SR, channels: int = 1) -> np.ndarray:
    """(samples, channels) sine tone, channel c at amplitude 0.5 / (c + 1) so channels differ."""
    t = np.arange(int(round(seconds * sr))) / sr  # (samples,)
    return np.stack([0.5 / (c + 1) * np.sin(2 * np.pi * freq * t) for c in range(channels)], axis=1)


def record(tmp_path, name: str, data: np.ndarray | None, sr: int = SR, seconds: float | None = None, **meta) -> dict:
    """Write `data` as tmp_path/name (None: leave the file to the caller) and return its record."""
    if data is not None:
        sf.write(str(tmp_path / name), data, sr, subtype="FLOAT")
        seconds = len(data) / sr
    return {"id": name, "path": name, "audio_path": str(tmp_path / name), "seconds": seconds,
            "sample_rate": sr, "genre": "bossa nova", "bpm": 133.4, "key": "A minor",
            "moods": ["calm"], "instruments": ["flute", "nylon guitar"], **meta}


SONG = {"genre": "bossa nova", "instruments": ["flute", "nylon guitar", "shaker"], "moods": ["calm", "warm"],
        "bpm": 133.4, "key": "A minor"}


# ---------------------------------------------------------------------------------------------- metadata

def test_read_metadata_resolves_paths_and_names_bad_lines(tmp_path):
    lines = [json.dumps({"id": "a", "path": "audio/a.wav", "seconds": 3.0}), "",
             json.dumps({"id": "b", "path": "/abs/b.wav", "seconds": 2.0})]
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    records = read_metadata(tmp_path / "metadata.jsonl")
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[0]["path"] == "audio/a.wav"
    assert records[0]["audio_path"] == str((tmp_path / "audio" / "a.wav").resolve())
    assert records[1]["audio_path"] == "/abs/b.wav"

    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n" + lines[2] + "\n" + '{"id": "c", "path": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: not valid JSON"):
        read_metadata(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="no metadata file"):
        read_metadata(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------------------------- prompts

def prompts(rec: dict, seeds=range(300)) -> list[str]:
    return [build_prompt(rec, torch.Generator().manual_seed(s)) for s in seeds]


def test_prompt_fields_skip_empty_and_round_bpm():
    fields = prompt_fields({**SONG, "moods": [], "key": None, "tags": ["", "lo-fi"], "year": 2021.0, "title": " "})
    assert fields == {"Genre": "bossa nova", "Instruments": ["flute", "nylon guitar", "shaker"], "BPM": "133",
                      "Tags": ["lo-fi"], "Year": "2021"}


def test_prompt_is_seeded_and_varied():
    a = build_prompt(SONG, torch.Generator().manual_seed(7))
    assert a == build_prompt(SONG, torch.Generator().manual_seed(7))
    assert len(set(prompts(SONG, range(50)))) > 20


def test_prompt_formats_with_and_without_names():
    ps = prompts(SONG)
    named = [p for p in ps if "|" in p or ": " in p]
    plain = [p for p in ps if p not in named]
    assert 0.35 < len(named) / len(ps) < 0.65  # half and half (paper 1 §3.1)
    assert any("|" in p for p in named)  # several fields joined by '|'
    # every named field is "Name: values" with a known name
    for p in named:
        for part in p.split("|"):
            name, _, value = part.partition(": ")
            assert name.lower() in {"genre", "instruments", "moods", "bpm", "key"} and value
    assert any(p.count(", ") >= 2 and ":" not in p for p in plain)  # values joined by ', '
    assert all("133" in p for p in ps if "bpm" in p.lower()) and not any("133.4" in p for p in ps)
    assert any(p == p.upper() and p != p.lower() for p in ps) and any(p == p.lower() for p in ps)


def test_prompt_shuffles_list_values():
    ps = [p.lower() for p in prompts({"instruments": ["flute", "nylon guitar", "shaker"]})]
    orders = {tuple(sorted(("flute", "nylon guitar", "shaker"), key=p.index)) for p in ps}
    assert len(orders) == 6  # all 3! orders of the list occur
    assert all(p.count(", ") == 2 for p in ps)  # the single field always has its three values


def test_prompt_caption_and_empty_record():
    ps = prompts({**SONG, "caption": "A calm bossa nova with flute."})
    share = ps.count("A calm bossa nova with flute.") / len(ps)
    assert 0.35 < share < 0.65
    assert build_prompt({"genre": None, "moods": [], "instruments": [], "bpm": None},
                        torch.Generator().manual_seed(0)) == ""
    assert build_prompt({"caption": "only a caption"}, torch.Generator().manual_seed(0)) == "only a caption"


# ---------------------------------------------------------------------------------------------- windows

def test_long_file_is_cropped_within_range(tmp_path):
    rec = record(tmp_path, "long.wav", sine(3.0))
    ds = SongDataset([rec], window_seconds=1.0, seed=3)
    starts, prompts_by_epoch = [], []
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["audio"].shape == (2, SR) and item["audio"].dtype == torch.float32
        assert bool(item["padding_mask"].all())
        assert item["seconds_total"] == 3
        starts.append(item["seconds_start"])
        prompts_by_epoch.append(item["prompt"])
        # the window is the file from seconds_start on
        offset = int(round(item["seconds_start"] * SR))
        np.testing.assert_allclose(item["audio"][0].numpy(), sine(3.0)[offset:offset + SR, 0], atol=1e-6)
    assert all(0.0 <= s <= 2.0 for s in starts) and len(set(starts)) == 8  # new crop every epoch
    ds.set_epoch(2)
    assert ds[0]["seconds_start"] == starts[2] and ds[0]["prompt"] == prompts_by_epoch[2]  # reproducible
    assert SongDataset([rec], window_seconds=1.0, random_crop=False)[0]["seconds_start"] == 0.0


def test_short_file_is_zero_padded_at_end(tmp_path):
    ds = SongDataset([record(tmp_path, "short.wav", sine(0.5))], window_seconds=1.0)
    item = ds[0]
    n = int(0.5 * SR)
    assert item["audio"].shape == (2, SR)
    assert item["seconds_start"] == 0.0 and item["seconds_total"] == 1
    assert torch.all(item["audio"][:, n:] == 0)
    assert item["audio"][:, :n].abs().max() > 0.4
    assert int(item["padding_mask"].sum()) == n and bool(item["padding_mask"][:n].all())


def test_seconds_total_is_ceil(tmp_path):
    ds = SongDataset([record(tmp_path, "a.wav", sine(2.3))], window_seconds=1.0)
    assert ds[0]["seconds_total"] == 3 == math.ceil(2.3)


def test_mono_duplicated_and_three_channels_cut(tmp_path):
    mono = SongDataset([record(tmp_path, "mono.wav", sine(1.0))], window_seconds=1.0)[0]["audio"]
    assert torch.equal(mono[0], mono[1]) and mono.abs().max() > 0.4
    three = SongDataset([record(tmp_path, "three.wav", sine(1.0, channels=3))], window_seconds=1.0)[0]["audio"]
    np.testing.assert_allclose(three.numpy(), sine(1.0, channels=3)[:, :2].T, atol=1e-6)  # channels 0 and 1


def test_48k_file_is_resampled(tmp_path):
    rec = record(tmp_path, "48k.wav", sine(1.0, freq=1000.0, sr=48000), sr=48000)
    item = SongDataset([rec], window_seconds=1.0)[0]
    assert item["audio"].shape == (2, SR)
    assert int(item["padding_mask"].sum()) >= SR - 1  # one second of a 48 kHz file fills the 44.1 kHz window
    spectrum = np.abs(np.fft.rfft(item["audio"][0, :SR].numpy()))  # (SR // 2 + 1,), 1 Hz bins
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1


# ---------------------------------------------------------------------------------------------- bad files

def bad_records(tmp_path) -> list[dict]:
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.wav").write_bytes(b"")
    return [record(tmp_path, "noise.wav", None, seconds=1.0), record(tmp_path, "empty.wav", None, seconds=1.0),
            record(tmp_path, "silent.wav", np.zeros((SR, 1)))]


def test_bad_files_are_skipped_with_reasons(tmp_path, capsys):
    good = record(tmp_path, "good.wav", sine(1.0))
    ds = SongDataset(bad_records(tmp_path) + [good], window_seconds=1.0)
    for i in range(4):
        assert ds[i]["id"] == "good.wav"  # every bad index falls through to the next usable item
    assert set(ds.skipped) == {"noise.wav", "empty.wav", "silent.wav"}
    assert "empty" in ds.skipped["empty.wav"] and "silent" in ds.skipped["silent.wav"]
    assert "cannot read noise.wav" in ds.skipped["noise.wav"]
    out = capsys.readouterr().out
    assert out.count("skipped silent.wav") == 1  # printed once per file

    ds = SongDataset(bad_records(tmp_path) + [good], window_seconds=1.0)
    bad = ds.check_files(tmp_path / "skipped.txt", progress=False)
    assert [key for key, _ in bad] == ["noise.wav", "empty.wav", "silent.wav"] and len(ds) == 1
    assert (tmp_path / "skipped.txt").read_text().splitlines()[2].startswith("silent.wav\tsilent file")


def test_silent_window_of_a_sound_file_is_kept(tmp_path):
    data = np.concatenate([np.zeros((SR, 1)), sine(1.0)])  # 1 s silence, then 1 s tone
    item = SongDataset([record(tmp_path, "quiet_start.wav", data)], window_seconds=1.0, random_crop=False)[0]
    assert item["id"] == "quiet_start.wav" and torch.all(item["audio"] == 0)


def test_all_bad_dataset_raises(tmp_path):
    ds = SongDataset(bad_records(tmp_path), window_seconds=1.0)
    with pytest.raises(AudioError, match="no usable audio file: all 3 files"):
        ds[0]
    with pytest.raises(AudioError, match="no usable audio file"):
        SongDataset(bad_records(tmp_path), window_seconds=1.0).check_files(progress=False)


def test_dataloader_with_workers(tmp_path):
    records = [record(tmp_path, f"{i}.wav", sine(1.5, freq=200.0 * (i + 1))) for i in range(4)]
    ds = SongDataset(records, window_seconds=1.0, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [b["audio"].shape for b in batches] == [(2, 2, SR)] * 2
    assert [i for b in batches for i in b["id"]] == ["0.wav", "1.wav", "2.wav", "3.wav"]
    # the workers drew the same crops as the parent would
    assert batches[1]["seconds_start"][1].item() == pytest.approx(ds[3]["seconds_start"])
    assert batches[0]["prompt"][0] == ds[0]["prompt"]


def test_split_records_is_deterministic_and_disjoint():
    from samod.data import split_records
    records = [{"id": f"s{i}"} for i in range(20)]
    training, held_out = split_records(records, every=8)
    assert [r["id"] for r in held_out] == ["s7", "s15"]
    assert len(training) == 18 and not {r["id"] for r in training} & {r["id"] for r in held_out}
    with pytest.raises(ValueError, match="at least 2"):
        split_records(records, every=1)
