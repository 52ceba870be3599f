"""Checkpoint files shared by the models: strict key checks and transformers model folders.

- `check_keys`: before a state dict in another layout (stable-audio-tools' names) is loaded, its keys are
  compared with the keys the model maps to. A missing weight would otherwise stay random and an unused
  key would mean a part of the model samod does not build, so either is one KeyError that counts and
  names them (samod.autoencoder, samod.dit and samod.pretrained load through it).
- `count_parameters`: how many numbers a model (or some of its parts) learns, each shared tensor once.
- `save_transformers_folder` / `require_files`: the text encoders (samod.clap.ClapEncoder,
  samod.t5.T5Conditioner) are transformers models and are written in transformers' folder layout
  (config.json, model.safetensors, tokenizer files) plus samod's own config; reading one checks first
  that the folder holds what is needed (nothing is ever downloaded).

Taught in notebooks/09_stable_audio_open.ipynb (loading strictly) and notebooks/02_clap.ipynb (the text encoders).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_file
from torch import nn

if TYPE_CHECKING:  # transformers is imported by the text encoders only, not by every model that checks keys
    from transformers import PreTrainedTokenizerBase

WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"]  # any one will do
NAMED_KEYS = 10  # keys named per list in a KeyError; the count is always exact


def _named(keys: list[str]) -> str:
    more = f", ... ({len(keys) - NAMED_KEYS} more)" if len(keys) > NAMED_KEYS else ""
    return "[" + ", ".join(keys[:NAMED_KEYS]) + more + "]"


def check_keys(expected: Iterable[str], found: Iterable[str], what: str, optional: Iterable[str] = (),
               hint: str = "") -> None:
    """Raise one KeyError if `found` lacks a key of `expected` or has a key `expected` does not.

    `optional` keys (a subset of `expected`) may be absent; `what` names the model or config the
    checkpoint should match and `hint` is added to the message (what to check next). Example:
    "checkpoint does not match the timing conditioner: 1 weights missing [seconds_total.linear.bias];
    0 keys unused []".
    """
    expected, found = set(expected), set(found)
    missing, unused = sorted(expected - set(optional) - found), sorted(found - expected)
    if missing or unused:
        raise KeyError(f"checkpoint does not match {what}: {len(missing)} weights missing {_named(missing)}; "
                       f"{len(unused)} keys unused {_named(unused)}" + (f". {hint}" if hint else ""))



def count_parameters(*parts) -> int:
    """Parameters in modules and loose tensors (e.g. `trainable_parameters(model)`' list), each tensor once.
    Works on the meta device (shapes only): `with torch.device("meta"): model = DiT(DiTConfig.paper())`."""
    sizes = {}
    for part in parts:
        tensors = part.parameters() if isinstance(part, nn.Module) else part if isinstance(part, list) else [part]
        for tensor in tensors:
            sizes[id(tensor)] = tensor.numel()
    return sum(sizes.values())

def save_transformers_folder(folder: str | Path, model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                             config, config_name: str) -> Path:
    """Write a transformers model folder (config.json, model.safetensors, tokenizer files) plus samod's config."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}  # clone: untie shared tensors
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    (folder / config_name).write_text(json.dumps(asdict(config), indent=1))
    return folder


def require_files(folder: Path, groups: list[list[str]], writer: str) -> None:
    """Raise FileNotFoundError naming, for each group of alternatives, the ones of which none is in `folder`."""
    missing = [" or ".join(group) for group in groups if not any((folder / name).exists() for name in group)]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {'; '.join(missing)}: expected a folder written by {writer}"
                                f" (nothing is downloaded; copy the files there yourself)")
