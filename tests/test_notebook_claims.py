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
`samod.course.what_you_will_see` draws from the run's figures). A number the text works out from listed constants is
listed too, its source starting "derived:".
"""
import json
import re
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
NUMBERED = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))

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
    "128": "T5 text tokens (Stable Audio Open §2.2)",
    "125": "RoBERTa-base text encoder, millions of parameters (paper 1 Table 1)",
    "12": "pitch classes of the equal-tempered octave (chroma: samod/chroma.py)",
    "500": "sigma_max of the sampler's noise levels (Stable Audio Open's defaults: samod/sampler.py get_sigmas)",
    "0.3": "sigma_min of the sampler's noise levels (Stable Audio Open's defaults: samod/sampler.py get_sigmas)",
    "100": "SAO's sampler steps (SAO §4, EvalConfig.paper); notebook 03's exercise rotary base",
    "1.06": "the paper DiT's parameters in billions (DiTConfig.paper, samod/dit.py; Table 1: 1.1B)",
    "95": "level of the bootstrap intervals (samod/generation_metrics.py bootstrap_interval, level=0.95)",
}

# constants one notebook uses: notebook -> {number: source}
NOTEBOOK_CONSTANTS = {
    "00": {
        "806": "the paper's catalogue: 806k files (paper 1 §3.1)",
        "19,500": "the paper's catalogue: 19,500 hours (paper 1 §3.1)",
        "600": "Figure 1's dataset: 600k popular songs (paper 1 §1)",
        "512": "the tiny corpus's song count (profiles.py)",
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
        "96": "the live run's songs (notebook 02 §4: train_clap(max_songs=96))",
        "1000": "steps of the tiny reference recipe (ClapRecipe.tiny)",
        "16": "held-out songs of the decoded-audio table",
    },
    "03": {
        "1.5": "derived: the 32 latent frames of §1's example / 21.53 frames per second",
        "10000": "rotary base (samod/dit.py rotary_frequencies, RoFormer)",
        "32": "R = K / 2 rotated dims of the paper DiT's heads of K = 64 (DiTConfig.paper: width 1536 / 24 heads)",
        "16": "derived: R / 2 rotary pairs of the paper DiT's heads",
        "512": "DiTConfig.max_seconds of the paper DiT (samod/dit.py)",
        "30": "tiny pre-training window in seconds (profiles.py)",
        "60": "tiny fine-tuning window in seconds (profiles.py)",
        "88": "the example offset beyond M of §3.2's clamping check (M + 88 in its code)",
        "768": "cond_dim of the paper DiT: RoBERTa-base's and T5-base's width (DiTConfig.paper, paper 1 Table 1)",
        "1.1": "the DiT's parameters in billions (paper 1 Table 1)",
        "157": "the autoencoder's parameters in millions (paper 1 Table 1)",
        "1.3": "all parameters in billions (paper 1 Table 1)",
        "6000": "the largest shift §2's relative-position check uses (its code)",
        "99": "the blocks' share of the DiT that §4 asserts (blocks_share > 0.99)",
        "600": "exercise 4's song length",
        "20": "exercise 4's target length in minutes",
        "1.0": "exercise 5's standard deviation",
    },
    "04": {
        "0.9987": "derived: t = (2 / pi) atan(500), the training time of sigma_max (asserted in §3's code)",
        "0.186": "derived: t = (2 / pi) atan(0.3), the training time of sigma_min (asserted in §3's code)",
        "19": "derived: the share of training times below t = 0.186",
        "0.1": "CFG dropout probability (stable-audio-tools, reference spec; DiffusionStage cfg_dropout=0.1)",
        "45": "4 m 45 s = 285 s, the fine-tuning window (paper 1 §3.2)",
        "30": "tiny pre-training window in seconds (profiles.py); fine-tuning steps of the live run (recipe.shortened)",
        "60": "tiny fine-tuning window in seconds (profiles.py)",
        "50": "pre-training steps of the live run (recipe.shortened(pretrain=50, finetune=30))",
    },
    "05": {
        "400": "steps of §2's reference solution (its code)",
        "50": "steps of §2's 2M-3M agreement test (its code)",
        "20": "steps of §2.1's and §3's generations (their code)",
        "16": "generations of notebook 06 §6's timing check: 8 held-out prompts at two lengths (its code)",
    },
    "06": {
        "527": "AudioSet's classes, PaSST's output (paper 1 §4.1, samod/embedders.py)",
        "220": "frequency of §2's test tone in Hz (its code)",
        "586": "Song Describer's no-singing prompts (paper 1 §4.1 and footnote 10; EvalConfig.paper)",
        "64": "held-out songs of the tiny corpus: every 8th of 512 (samod/data.py)",
        "50": "exercise's step count",
    },
    "07": {
        "45": "the paper's reference number [45] (paper 1's bibliography)",
        "4096": "StructureConfig.n_fft (samod/structure.py)",
        "22.05": "sample rate of the structure features in kHz (samod/structure.py)",
        "23": "derived: StructureConfig.stft_hop 512 samples at 22.05 kHz, in ms",
        "13": "StructureConfig.n_mfcc (samod/structure.py)",
        "2.9": "a worked example, not a corpus song: the lag 10.6 = 13.5 - 2.9",
        "13.5": "a worked example, not a corpus song: the lag 10.6 = 13.5 - 2.9",
        "10.6": "derived: 13.5 - 2.9 of the worked example",
        "120": "the tempo at which the tiny profile's 1 s tolerance is half a 4/4 bar (derived: 4 beats of 0.5 s)",
        "0.02": "exercise 2's smallest kappa",
        "0.2": "exercise 2's largest kappa",
        "16": "exercise 2's largest embedding m in frames",
    },
    "08": {
        "50": "top-50 memorization candidates (paper 1 §4.5, Stable Audio Open §5.3)",
    },
    "09": {
        "47": "Stable Audio Open's window in seconds (SAO §2: 2,097,152 samples at 44.1 kHz)",
        "47.55": "derived: 2,097,152 samples / 44100 Hz, SAO's window (samod/pretrained.py, 1024 latent frames)",
        "160": "shortest long demo length in SAO's demo_cond (samod/pretrained.py SAO_DEMO)",
        "40": "assumed model FLOP utilisation in % (samod/plan.py MFU)",
        "312": "A100 dense bf16 peak in TFLOP/s (samod/plan.py PEAK_FLOPS)",
        "989": "H100 SXM dense bf16 peak in TFLOP/s (samod/plan.py PEAK_FLOPS)",
        "6138": "derived: the 6137 latent frames of a 285 s window (285 x 21.53, rounded up) plus the global token",
        "13": "paper 1's inference time in seconds for a 285 s generation (paper 1 Table 3)",
        "25": "exercise 2's step count",
    },
    "10": {
        "2106.09685": "the LoRA paper's arXiv identifier (Hu et al. 2021)",
        "185": "the calypso row's slowest tempo in BPM (its Genre in §1's code)",
        "200": "the calypso row's fastest tempo in BPM (its Genre in §1's code)",
        "20": "the shortest calypso song in seconds (render_style min_seconds in §1's code)",
        "30": "the longest calypso song in seconds (render_style max_seconds in §1's code)",
        "24": "seconds of §4's generations (its code)",
        "256": "SHA-256, the hash of the base weights (samod/finetune.py)",
        "60": "steps of the adapter's live training (§3's code); exercise 3's shortest song in seconds",
        "300": "exercise 1's step count",
        "32": "exercise 2's largest rank; exercise 3's generation and held-out counts",
        "120": "exercise 3's longest song in seconds",
        "2000": "exercise 3's step count",
        "16": "exercise 4's rank",
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


def test_a_new_run_number_in_any_notebook_fails():
    """Every numbered notebook is held to the rule: a sentence quoting a measured number added to one of its markdown
    cells is found."""
    assert len(NUMBERED) >= 11
    for path in NUMBERED:
        cells = _cells(path)
        markdown = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and i > 0)
        cells[markdown] = {**cells[markdown], "source": cells[markdown]["source"] + ["\nThe loss fell to 0.42."]}
        assert [f.split(" in ")[0] for f in offending(path.name[:2], cells)] == [f"cell {markdown}: 0.42"], path.name
