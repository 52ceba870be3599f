"""Unit tests train toy models and load them back: they use a profile's own checkpoints, never the
reference weights shipped in samod/weights/ (tests/test_reference.py asks for those explicitly)."""
import os

os.environ["SAMOD_WEIGHTS"] = "own"
