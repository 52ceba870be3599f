"""k-diffusion's samplers as a test-only peer, loaded without its heavy package __init__.

k-diffusion 0.1.1.post1 is installed with `pip install --no-deps` (its declared dependencies include
torchvision, clip, kornia, wandb, ...). Its `k_diffusion/__init__.py` imports every submodule, so
`import k_diffusion` fails without them; the two modules the parity tests need, `sampling.py` and
`external.py`, only need torchsde, torchdiffeq, scipy, tqdm and `utils.py`, which imports torchvision
for two image helpers the samplers never call. `load()` imports those files from the installed package
directory under a private package name, so the package __init__ never runs; if torchvision is missing,
a placeholder stands in for it while utils.py loads and is removed afterwards.

Not a test module (pytest collects test_*.py only). Tests call `load()`, which skips when the peer is absent.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import lru_cache

import pytest

_PACKAGE = "_k_diffusion_peer"  # a private name: never shadows a real `k_diffusion`


@lru_cache(maxsize=None)
def _load() -> types.SimpleNamespace:
    spec = importlib.util.find_spec("k_diffusion")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed: pip install --no-deps k-diffusion==0.1.1.post1")
    for name in ("torchsde", "torchdiffeq", "scipy", "tqdm"):
        importlib.import_module(name)
    package = types.ModuleType(_PACKAGE)
    package.__path__ = list(spec.submodule_search_locations)  # submodules load from the installed files
    sys.modules[_PACKAGE] = package
    placeholders = {}
    if importlib.util.find_spec("torchvision") is None:  # utils.py: `from torchvision.transforms import functional`
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
            placeholders[name] = sys.modules[name] = types.ModuleType(name)
        placeholders["torchvision"].transforms = placeholders["torchvision.transforms"]
        placeholders["torchvision.transforms"].functional = placeholders["torchvision.transforms.functional"]
    try:
        sampling = importlib.import_module(f"{_PACKAGE}.sampling")
        external = importlib.import_module(f"{_PACKAGE}.external")
    finally:
        for name in placeholders:
            del sys.modules[name]
    return types.SimpleNamespace(sampling=sampling, external=external)


def load() -> types.SimpleNamespace:
    """k-diffusion's `sampling` and `external` modules (as .sampling, .external), or skip the calling test."""
    try:
        return _load()
    except ImportError as error:
        pytest.skip(f"k-diffusion peer unavailable ({error})")
