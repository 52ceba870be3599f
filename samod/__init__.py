"""samod: a readable reference implementation of Stable Audio 2 (long-form text-to-music latent diffusion).

One file per component; each opens with the paper section it implements and the notebook that teaches it.
Profiles (tiny / small / paper) are chosen with the environment variable SAMOD_PROFILE (samod/profiles.py).
"""
from samod.profiles import SAMPLE_RATE, Profile, get_profile

__all__ = ["SAMPLE_RATE", "Profile", "get_profile", "generate", "save_generation"]


def __getattr__(name: str):
    """`samod.generate` and `samod.save_generation` (samod/generation.py), imported on first use."""
    if name in ("generate", "save_generation"):
        from samod import generation  # torch and the models: `import samod` alone stays light (Makefile)
        return getattr(generation, name)
    raise AttributeError(f"module 'samod' has no attribute {name!r}")
