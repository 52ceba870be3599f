"""The "what you will see" boxes (samod/course.py): filled from measured JSON, never hand-written."""
import json

import pytest

from samod.course import FACTS, REFERENCE_FIGURES, measured_facts, what_you_will_see
from samod.profiles import get_profile


def _checks(difference: float, profile: str = "tiny") -> dict:
    return {"profile": profile,
            "timing_adherence": {"median_after_vs_before_db": -12.3, "prompts": 8, "lengths": [26.0, 38.0]},
            "prompt_adherence": {"prompts": 64, "difference": difference, "difference_low": difference - 0.01,
                                 "difference_high": difference + 0.01, "genre_accuracy": 0.5, "genre_chance": 0.25}}


def test_a_box_shows_the_numbers_of_the_last_run_at_this_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path))
    (tmp_path / "adherence.json").write_text(json.dumps(_checks(0.321)))
    sentences, source = measured_facts("06", get_profile("tiny"))
    assert str(tmp_path) in source and len(sentences) == 2
    assert "12 dB" in sentences[0] and "+0.321" in sentences[1] and "2.0x" in sentences[1]
    (tmp_path / "adherence.json").write_text(json.dumps(_checks(-0.456)))
    assert "-0.456" in measured_facts("06", get_profile("tiny"))[0][1]  # the number follows the file


def test_numbers_of_another_profile_are_not_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path))
    (tmp_path / "adherence.json").write_text(json.dumps(_checks(0.321, profile="tiny")))
    assert measured_facts("06", get_profile("small")) == ([], "")
    box = what_you_will_see("06", get_profile("small")).data
    assert "Nothing has been measured at the **small** profile" in box and "0.321" not in box


def test_at_tiny_without_a_run_the_committed_reference_numbers_are_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path / "empty"))
    sentences, source = measured_facts("01", get_profile("tiny"))
    assert "reference run" in source and "identification" in sentences[0]


@pytest.mark.parametrize("notebook", sorted(FACTS))
def test_every_fact_reads_the_committed_reference_figures(notebook):
    for fact in FACTS[notebook]:
        assert (REFERENCE_FIGURES / fact.file).exists(), fact.file
        assert fact.sentence(json.loads((REFERENCE_FIGURES / fact.file).read_text()))


def test_every_notebook_with_facts_opens_with_its_box():
    for notebook in {name.split("-")[0] for name in FACTS}:
        path = next((REFERENCE_FIGURES.parent / "notebooks").glob(f"{notebook}_*.ipynb"))
        cells = json.loads(path.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert f'what_you_will_see("{notebook}")' in "".join(first_code["source"]), path.name


def test_a_file_from_an_older_run_is_named_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path))
    (tmp_path / "adherence.json").write_text(json.dumps({"profile": "tiny", "timing_adherence": {}}))
    sentences, _ = measured_facts("06", get_profile("tiny"))
    assert all("older run" in s for s in sentences) and len(sentences) == 2


def test_an_unknown_notebook_is_refused():
    with pytest.raises(ValueError, match="known are"):
        measured_facts("99")


def test_the_course_guide_names_every_solutions_notebook():
    """notebooks/README.md lists the worked solutions; a solutions notebook it does not name is one a teacher misses."""
    guide = (REFERENCE_FIGURES.parent / "notebooks" / "README.md").read_text()
    solutions = sorted((REFERENCE_FIGURES.parent / "notebooks" / "solutions").glob("[0-9]*.ipynb"))
    assert solutions
    for path in solutions:
        assert f"solutions/{path.name}" in guide, f"notebooks/README.md does not name solutions/{path.name}"


# ---- reading times (the course guide's "Time per notebook" table) ----
import re  # noqa: E402

from samod.course import CODE_LINES_PER_MINUTE, WORDS_PER_MINUTE, reading_counts, reading_minutes  # noqa: E402

GUIDE = REFERENCE_FIGURES.parent / "notebooks" / "README.md"


def test_reading_time_counts_prose_words_and_code_lines(tmp_path):
    cells = [{"cell_type": "markdown", "source": ["# Title\n", "one two three four"]},  # 6 words
             {"cell_type": "code", "source": ["x = 1\n", "\n", "   \n", "# a comment\n", "print(x)"]},  # 3 lines
             {"cell_type": "raw", "source": ["not read"]}]
    assert reading_counts(cells) == (6, 3)
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": cells * 50}))  # 300 words, 150 lines
    assert reading_minutes(path) == pytest.approx(300 / WORDS_PER_MINUTE + 150 / CODE_LINES_PER_MINUTE)
    assert reading_minutes(path) == pytest.approx(12.0)


def test_the_course_guide_lists_the_measured_reading_time_of_every_notebook():
    listed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| (\d\d_\w+) \| (\d+) min \|", GUIDE.read_text(), re.M)}
    notebooks = sorted(GUIDE.parent.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(listed) == [p.stem for p in notebooks], "the guide's table should list every numbered notebook"
    measured = {p.stem: reading_minutes(p) for p in notebooks}
    wrong = {name: (listed[name], round(m)) for name, m in measured.items()
             if abs(listed[name] - m) > max(1.0, 0.1 * m)}
    assert not wrong, f"reading minutes in notebooks/README.md (listed, measured): {wrong}"


def test_the_campaign_sentence_comes_from_the_committed_curve_whatever_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path))  # a run of its own, without the campaign's curve
    sentences, source = measured_facts("01", get_profile("tiny"))
    curve = json.loads((REFERENCE_FIGURES / "autoencoder_campaign.json").read_text())
    assert f"for {curve['points'][-1]['step']} steps" in sentences[-1]
    assert "autoencoder_campaign.json in figures/" in source
    assert measured_facts("01", get_profile("small")) == ([], "")  # the curve is the tiny profile's


def test_the_campaign_sentence_and_row_say_what_became_of_its_weights(tmp_path, monkeypatch):
    from samod import results, weights
    curve = json.loads((REFERENCE_FIGURES / "autoencoder_campaign.json").read_text())
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    (tmp_path / "tiny").mkdir()
    shipped = tmp_path / "tiny" / "autoencoder.json"
    shipped.write_text(json.dumps({"steps": 1500}))  # the recipe's run: not promoted
    sentence, row = measured_facts("01", get_profile("tiny"))[0][-1], results._campaign(curve)[0][1]
    assert "keep the recipe's weights" in sentence and "not retrained" in row
    shipped.write_text(json.dumps({"campaign": {"steps": 12250}}))
    sentence, row = measured_facts("01", get_profile("tiny"))[0][-1], results._campaign(curve)[0][1]
    assert "at step 12250 are the reference" in sentence and "fine-tuned" not in sentence + row
    shipped.write_text(json.dumps({"campaign": {"steps": 12250}, "decoder": {"steps": 2000}}))
    sentence, row = measured_facts("01", get_profile("tiny"))[0][-1], results._campaign(curve)[0][1]
    assert "decoder was fine-tuned alone for 2000 steps" in sentence and "decoder fine-tuned alone 2000" in row
