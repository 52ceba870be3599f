"""README's results table (samod/results.py): generated from figures/*.json, so it cannot go stale."""
import json
import shutil

import pytest

from samod.results import BEGIN, END, FIGURES, README, SOURCES, main, results_table, with_table


def _figures_copy(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    for name in SOURCES:
        shutil.copy(FIGURES / name, folder / name)
    return folder


def test_readme_table_is_the_one_the_figures_give():
    text = README.read_text()
    assert with_table(text, results_table()) == text, (
        "README's results table differs from figures/*.json: run `python -m samod.results` and commit README.md")


def test_the_table_follows_the_numbers_and_names_their_file(tmp_path):
    folder = _figures_copy(tmp_path)
    table5 = json.loads((folder / "table5_autoencoder.json").read_text())
    table5["rows"][0]["identification"] = 0.3125
    table5["rows"][0]["chroma_identification"] = 0.8125
    (folder / "table5_autoencoder.json").write_text(json.dumps(table5))
    table = results_table(folder)
    notes = next(line for line in table.splitlines() if "chroma identification" in line)
    assert "| 0.81 |" in notes and "`figures/table5_autoencoder.json`" in notes
    assert "| 0.31 |" in table and f"| {table5['rows'][0]['identification']:.2f} |" in table
    assert all(line.rstrip().endswith("json` |") for line in table.splitlines()[2:])


def test_a_missing_chroma_measure_is_said_not_invented(tmp_path):
    folder = _figures_copy(tmp_path)
    table5 = json.loads((folder / "table5_autoencoder.json").read_text())
    table5["rows"][0].pop("chroma_identification", None)
    (folder / "table5_autoencoder.json").write_text(json.dumps(table5))
    notes = next(line for line in results_table(folder).splitlines() if "chroma identification" in line)
    assert "not measured yet" in notes


def test_check_fails_on_a_stale_table_and_writing_fixes_it(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{BEGIN}\n| an old | table |\n{END}\n\nafter\n")
    assert main(["--check", "--readme", str(readme)]) == 1
    assert "an old" in readme.read_text()  # --check writes nothing
    assert main(["--readme", str(readme)]) == 0
    assert main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "an old" not in text and text.startswith("# title\n") and text.endswith("\nafter\n")


def test_a_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="between one"):
        with_table("# no table here\n", "| a |")


def test_readme_is_a_short_guide_whose_first_screen_says_what_you_get():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it a guide of at most 200 (the log: docs/)"
    first_screen = "\n".join(lines[:45])
    for needed in ("make demo", "make test", "artifacts/tiny/generated/demo_song.flac",
                   "artifacts/tiny/demo/index.html", "minutes", "notes"):
        assert needed in first_screen, f"README's first screen does not say {needed!r}"
