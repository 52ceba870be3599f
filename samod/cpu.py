"""Speed-ups for running on a CPU without autograd, kept out of the model files: same numbers, less time.

The model files write the math; where a CPU run profits from computing the same thing another way,
they call one of these helpers instead of carrying the branch themselves:

- `in_pieces(f, size, *tensors, **named)`: f over a batch, on the CPU in pieces of `size` items. The
  items of a batch are independent, so the result is the same; a smaller working set stays in the
  CPU's caches. The sampler's model calls (samod/sampler.py, `Denoiser.model_v`) and the autoencoder's
  chunked encoding and decoding (samod/autoencoder.py) use it.
- `snake_beta(x, alpha, inv_beta)`: the SnakeBeta activation x + inv_beta sin^2(alpha x)
  (samod/autoencoder.py); without autograd the same sum is computed in place, with fewer temporaries.

tests/test_autoencoder.py and tests/test_sampler.py check that each gives the numbers of the plain form;
the measured gains are in docs/experiments.md. No notebook teaches this file: every notebook runs it
through the sampler and the autoencoder.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def in_pieces(f: Callable[..., Tensor], size: int, /, *tensors: Tensor, **named: Tensor) -> Tensor:
    """f(*tensors, **named), every argument batch first; on the CPU in pieces of `size` items, concatenated."""
    first = tensors[0]
    if first.device.type != "cpu" or len(first) <= size:
        return f(*tensors, **named)
    return torch.cat([f(*(t[i:i + size] for t in tensors), **{k: v[i:i + size] for k, v in named.items()})
                      for i in range(0, len(first), size)])


def snake_beta(x: Tensor, alpha: Tensor, inv_beta: Tensor) -> Tensor:
    """x + inv_beta * sin^2(alpha x); computed in place when no gradient is recorded (same numbers)."""
    if torch.is_grad_enabled():
        return x + inv_beta * torch.sin(alpha * x) ** 2
    s = (alpha * x).sin_()
    return s.mul_(s).mul_(inv_beta).add_(x)
