"""Table 5 as a table (samod/autoencoder_evaluation.py, written by samod/tables.py): a measured row, its
Markdown and JSON, the published rows."""
import json

import pytest
import torch

from samod.autoencoder_evaluation import PUBLISHED_TABLE5, TABLE5_HEADER, table5_row
from samod.metrics import reconstruction_metrics, silence_baseline
from samod.tables import markdown_table, write_table

SR = 44100


def song(seed=0, seconds=1.0):
    """(2, samples) stereo: five sines, the right channel a quarter period late, and a little noise."""
    t = torch.arange(int(seconds * SR)) / SR
    freqs = [110, 220, 440, 1760, 5000]
    left = sum(torch.sin(2 * torch.pi * f * t) for f in freqs)
    right = sum(torch.sin(2 * torch.pi * f * t + torch.pi / 2) for f in freqs)
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.stack([left, right]) / len(freqs) + 0.01 * torch.randn(2, int(seconds * SR), generator=g)


def test_table_markdown_and_json(tmp_path):
    x = song()
    vae = table5_row("VAE", reconstruction_metrics([x], [x + 0.01], progress=False), SR, SR / 2048, 64)
    silence = table5_row("silence", reconstruction_metrics([x], [silence_baseline(x)], progress=False),
                         SR, None, None)
    md_path, json_path = write_table([vae, silence], tmp_path / "table5.tiny", "Table 5 (tiny)",
                                     {"files": 1, "seconds": 1.0})
    lines = md_path.read_text().splitlines()
    header = ("| model | sampling rate | STFT distance ↓ | MEL distance ↓ | SI-SDR ↑ | latent rate "
              "| latent channels |")
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == header and len(table) == 2 + 2
    assert table[2].startswith("| VAE | 44.1kHz |") and table[2].endswith("| 21.5 Hz | 64 |")
    assert table[3].endswith("| -80.00 | — | — |")
    saved = json.loads(json_path.read_text())
    assert [r["model"] for r in saved["rows"]] == ["VAE", "silence"]
    assert saved["notes"]["files"] == 1 and "profile" in saved["notes"]
    with pytest.raises(ValueError, match="PUBLISHED_TABLE5"):
        write_table([vae, PUBLISHED_TABLE5[-1]], tmp_path / "mixed", "mixed", {})


def test_published_table5():
    ours = PUBLISHED_TABLE5[-1]
    published = (ours["stft_distance"], ours["mel_distance"], ours["si_sdr"], ours["latent_rate"])
    assert published == (1.19, 0.71, 7.14, 21.5)
    assert all(r["source"] == "published (paper 1 Table 5)" for r in PUBLISHED_TABLE5)
    assert len(markdown_table(PUBLISHED_TABLE5).splitlines()) == 2 + 6
    assert len(TABLE5_HEADER) == 7


def test_rows_without_a_table_format_say_what_to_import():
    with pytest.raises(ValueError, match="samod.evaluation"):
        markdown_table([{"model": "x", "source": "measured"}])
