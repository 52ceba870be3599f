"""A notebook's prose states no number that its run produces: those live in code outputs and the opening box.

A run's numbers change whenever the models are retrained; a sentence that quotes one goes stale without anyone
noticing, and then the notebook contradicts the output printed under it. So every number in a markdown cell of a
numbered notebook must be one of:

- a constant of the papers or a fixed setting of the code (a hyperparameter, a profile size), listed below with its
  source, in `CONSTANTS` (any notebook) or `NOTEBOOK_CONSTANTS` (one notebook);
- or a reference, not a quantity: section and list numbering, "Figure 1", "Table 5", "§3.1", "paper 1",
  "notebook 07", "exercise 3", "Recall@10", a citation's year, anything in `code` or a link's address;
- or a small count (0 to 10: "two losses", "5 scales"), which is how prose counts, not how a run reports.

A number a run produced belongs in a code cell's printed output, computed there (or in the box that
`samod.course.what_you_will_see` draws from the run's figures). Notebooks still being brought to this rule are listed
in `EXPECTED_TO_FIX`: their test reports the offending cells and is expected to fail until they pass, and it fails
the other way (asking to be removed from the set) once they do.
"""
import json
import re
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
NUMBERED = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))

# notebooks whose prose still quotes run numbers: empty this set as each is fixed
EXPECTED_TO_FIX = {"03", "04", "05", "06", "07", "08", "09", "10"}

# constants of the papers and fixed settings of the code, allowed in any notebook: number -> where it comes from
CONSTANTS = {
    "44.1": "sample rate in kHz (paper 1 §3.1)",
    "44100": "sample rate in Hz (paper 1 §3.1)",
    "48": "CLAP's audio sample rate in kHz (LAION-CLAP, paper 1 §2.4)",
    "2048": "samples per latent frame, the product of the strides (paper 1 §2.1)",
    "21.5": "latent frames per second, 44100 / 2048 (paper 1 §2.1)",
    "21.53": "latent frames per second, 44100 / 2048 (paper 1 §2.1)",
    "64": "latent channels (paper 1 §2.1)",
    "285": "fine-tuning window in seconds (paper 1 §3.2, Figure 1)",
    "190": "pre-training window in seconds (paper 1 §3.2)",
    "6144": "latent frames of the 285 s window (paper 1 §3.2)",
    "90": "length of the longest earlier models' outputs, in seconds (paper 1 Figure 1)",
    "77": "CLAP text tokens (RoBERTa's maximum in LAION-CLAP, paper 1 §2.4)",
    "128": "T5 text tokens (Stable Audio Open §2.2); also the tiny corpus's song count (profiles.py)",
    "125": "RoBERTa-base text encoder, millions of parameters (paper 1 Table 1)",
    "12": "pitch classes of the equal-tempered octave (chroma: samod/chroma.py)",
}

# constants one notebook uses: notebook -> {number: source}
NOTEBOOK_CONSTANTS = {
    "00": {
        "806": "the paper's catalogue: 806k files (paper 1 §3.1)",
        "19,500": "the paper's catalogue: 19,500 hours (paper 1 §3.1)",
        "600": "Figure 1's dataset: 600k popular songs (paper 1 §1)",
        "20": "tiny profile's shortest song in seconds (profiles.py)",
        "45": "tiny profile's longest song in seconds (profiles.py)",
        "30": "tempo estimation reads the first 30 s (data_prep/tempo.py); tiny pre-training window (profiles.py)",
        "60": "tiny fine-tuning window in seconds (profiles.py)",
        "120": "librosa's tempo prior is centred on 120 BPM (librosa.feature.tempo)",
        "3+3+2": "the rhythm of the exercise",
    },
    "01": {
        "1378": "64 x 21.53 numbers per second: the derivation of §3",
        "88200": "2 x 44100 audio samples per second: the derivation of §3",
        "0.1": "adversarial loss weight (SAO autoencoder config)",
        "32": "the smallest FFT size of the multi-resolution STFT loss (SAO config); chunk overlap (AutoencoderConfig)",
        "1500": "steps of the tiny reference recipe (AutoencoderRecipe.tiny)",
        "30": "the live run's length in steps (notebook 01 §5); the random gain's range in dB (AutoencoderRecipe.tiny)",
        "16": "held-out songs scored (notebook 01 §6, §8); frames cropped at each inner chunk edge",
        "1/16": "chance of identifying one of 16 songs",
        "0.9": "the gate's identification and specificity thresholds (notebook 01 §8)",
        "40": "the gate's silence threshold in dB (notebook 01 §8)",
        "20": "the gate's margin over the low-pass, in % (notebook 01 §8)",
        "0.005": "the posterior's initial noise (data_dependent_init)",
        "46": "0.005 in dB below unit-std means: 20 log10(1 / 0.005)",
        "1.0": "the specificity ratio of an output that ignores its input (its definition)",
        "12.6": "samples of a 285 s stereo song, in millions: 285 x 44100",
        "120": "steps of exercise 2",
        "250": "steps between the reference run's measurements (reference.py)",
    },
    "02": {
        "0.07": "CLIP's initial temperature (Radford et al. 2021, LAION-CLAP)",
        "14.3": "1 / 0.07",
        "100": "the logit scale's clamp (CLIP)",
        "80": "the live run's length in steps (notebook 02 §4)",
        "1000": "steps of the tiny reference recipe (ClapRecipe.tiny)",
        "16": "held-out songs of the decoded-audio table",
    },
}

_REFERENCE = re.compile(
    r"(?:Figure|Fig\.|Table|§|paper|notebook|notebooks|exercise|exercises|lecture|Stable Audio|Recall@|R@|@)\s*"
    r"\d+(?:\.\d+)*(?:\s*(?:and|,|-|to)\s*\d+(?:\.\d+)*)*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.^{])\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?(?:\+\d+)*")


def prose(markdown: str) -> str:
    """A markdown cell without what is not prose: code, link addresses, HTML tags, headings' numbers, references."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)  # code blocks
    text = re.sub(r"`[^`]*`", " ", text)  # inline code
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link addresses
    text = re.sub(r"<[^>]*>", " ", text)  # HTML tags
    text = re.sub(r"^\s*#+\s*\d+(\.\d+)*\.?", " ", text, flags=re.M)  # "## 3. ..." heading numbers
    text = re.sub(r"^\s*\d+\.\s", " ", text, flags=re.M)  # numbered list items
    text = re.sub(r"\b\d{2}_\w+", " ", text)  # notebook file names
    text = re.sub(r"(?:et al\.|[A-Z][a-z]+)\s*[(,]?\s*(?:19[5-9]\d|20[0-2]\d)\b", " ", text)  # citations' years
    return _REFERENCE.sub(" ", text)


def numbers_in(markdown: str) -> list[str]:
    """The numbers a markdown cell states, as written (0 to 10 left out: counts)."""
    found = []
    return [token for token in _NUMBER.findall(prose(markdown)) if not _small(token)]


def _small(token: str) -> bool:
    plain = token.replace(",", "")
    return bool(re.fullmatch(r"\d+", plain)) and int(plain) <= 10


def _allowed(token: str, allowed: dict) -> bool:
    """A listed constant, or a ratio of listed constants and counts ("1/16", "1/0.07")."""
    return token in allowed or ("/" in token and all(_small(p) or p in allowed for p in token.split("/")))


def offending(notebook: str, cells: list[dict]) -> list[str]:
    """'cell N: number in "context"' for every number of a markdown cell that is neither a constant nor a reference."""
    allowed = CONSTANTS | NOTEBOOK_CONSTANTS.get(notebook, {})
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = prose("".join(cell["source"]))
        for token in numbers_in("".join(cell["source"])):
            if not _allowed(token, allowed):
                match = re.search(rf"(?<![\w.]){re.escape(token)}(?![\d])", text)
                at = match.start() if match else 0
                found.append(f"cell {index}: {token} in \"...{text[max(0, at - 40):at + 40].strip()}...\"")
    return found


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_the_checker_finds_a_run_number_and_passes_constants_and_references():
    cells = [{"cell_type": "markdown", "source": ["The live loss fell to 0.37 after 300 steps; its KL is 617, 1/617 of it."]},
             {"cell_type": "markdown", "source": ["## 3. Figure 1 and Table 5 (paper 1 §3.1, notebook 07)\n",
                                                  "At 44.1 kHz, `steps=250`, two of 5 scales, Recall@10 (Ho et al. 2022; Salimans (2016))."]},
             {"cell_type": "code", "source": ["print(0.37)"]}]
    assert [f.split(":")[0] + ":" + f.split(":")[1].split(" in ")[0] for f in offending("00", cells)] == \
        ["cell 0: 0.37", "cell 0: 300", "cell 0: 617", "cell 0: 1/617"]


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.stem)
def test_markdown_states_no_run_numbers(path):
    notebook = path.name[:2]
    found = offending(notebook, _cells(path))
    if notebook in EXPECTED_TO_FIX:
        if not found:
            pytest.fail(f"{path.name} passes now: remove {notebook!r} from EXPECTED_TO_FIX")
        pytest.xfail(f"{path.name} still states run numbers in its prose:\n" + "\n".join(found))
    assert not found, (f"{path.name}: numbers in markdown that are not listed constants (print a run's number from "
                       f"code; list a paper constant in NOTEBOOK_CONSTANTS with its source):\n" + "\n".join(found))


def _used(path: Path) -> set[str]:
    """The numbers a notebook's markdown states, and the parts of its ratios."""
    tokens = {t for c in _cells(path) if c["cell_type"] == "markdown" for t in numbers_in("".join(c["source"]))}
    return tokens | {part for t in tokens for part in t.split("/")}


def test_every_shared_constant_is_used():
    unused = set(CONSTANTS) - set().union(*(_used(p) for p in NUMBERED))
    assert not unused, f"no notebook states {sorted(unused)} any more: remove them from CONSTANTS"


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_CONSTANTS))
def test_every_listed_constant_is_used(notebook):
    """The allow-list stays small: a constant no longer in the notebook's prose is struck from it."""
    path = next(FOLDER.glob(f"{notebook}_*.ipynb"))
    unused = set(NOTEBOOK_CONSTANTS[notebook]) - _used(path)
    assert not unused, f"{path.name} no longer states {sorted(unused)}: remove them from NOTEBOOK_CONSTANTS"


def test_every_glossary_link_has_its_entry():
    """Notebooks link jargon to the course guide's glossary (README.md#glossary-<term>): each link finds its entry."""
    anchors = set(re.findall(r'<a id="(glossary-[\w-]+)"></a>', (FOLDER / "README.md").read_text()))
    assert len(anchors) >= 12, "the course guide's glossary is missing"
    broken = {f"{path.name}: {link}" for path in NUMBERED for cell in _cells(path) if cell["cell_type"] == "markdown"
              for link in re.findall(r"README\.md#(glossary-[\w-]+)", "".join(cell["source"])) if link not in anchors}
    assert not broken, f"glossary links without an entry in notebooks/README.md: {sorted(broken)}"


def test_a_new_run_number_in_a_fixed_notebook_fails():
    """Notebooks 00-02 are held to the rule: they may not join EXPECTED_TO_FIX, and a sentence quoting a measured
    number added to any of their markdown cells is found."""
    assert not EXPECTED_TO_FIX & {"00", "01", "02"}
    for path in NUMBERED[:3]:
        cells = _cells(path)
        markdown = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and i > 0)
        cells[markdown] = {**cells[markdown], "source": cells[markdown]["source"] + ["\nThe loss fell to 0.42."]}
        assert [f.split(" in ")[0] for f in offending(path.name[:2], cells)] == [f"cell {markdown}: 0.42"], path.name
