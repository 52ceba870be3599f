"""Sampling: DPM-Solver++ (2M, 2M SDE, 3M SDE) on the v-model, with classifier-free guidance.

Stable Audio's transformer is trained as a v-model (spec "Diffusion objective and sampling"):
z_t = alpha z0 + sigma_t eps with alpha = cos(pi t / 2), sigma_t = sin(pi t / 2), target
v = alpha eps - sigma_t z0. Sampling works in the variance-exploding (VE) view of the same process:

    x = z_t / alpha = z0 + sigma eps,      sigma = sigma_t / alpha = tan(pi t / 2),   t = atan(sigma) 2 / pi

so the noise level sigma runs from 0 (data) to infinity (pure noise), and the data are recovered by a
denoiser D(x, sigma) ~ E[z0 | x]. In this file sigma is always this variance-exploding level (sigma_VE in
notebook 04 and the README's glossary) and the schedule's sin(pi t / 2) is sigma_t. From
z_t = x / sqrt(sigma^2 + 1) and z0 = alpha z_t - sigma_t v (the v-parametrisation solved for z0):

    D(x, sigma) = c_skip x + c_out v(c_in x, t(sigma))
    c_skip = 1 / (sigma^2 + 1),   c_out = -sigma / sqrt(sigma^2 + 1),   c_in = 1 / sqrt(sigma^2 + 1)

which is k-diffusion's `VDenoiser` with sigma_data = 1 (`Denoiser` below).

Classifier-free guidance acts on the model output: v = v_u + s (v_c - v_u), with the unconditional branch
the same call with the cross-attention context zeroed (text and timing tokens) and the global token kept,
as in CFG dropout during training. Both branches run as one batched call on cat([x, x]). The optional
rescale (Lin et al. 2023, "Common diffusion noise schedules ... are flawed") pulls the guided output's
per-position spread back to the conditional one: v <- phi v std_C(v_c) / std_C(v) + (1 - phi) v, with
std over channels (unbiased, as stable-audio-tools' DiT). The optional guidance interval (stable-audio-tools'
cfg_interval; Kynkaenniemi et al. 2024, "Applying guidance in a limited interval ...") guides only at noise
levels lo < sigma <= hi and runs the conditional branch alone elsewhere (one model call instead of two).

DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095). With lambda = -log sigma (half the log-SNR), the
probability-flow ODE dx/dsigma = (x - D) / sigma becomes dx/dlambda = D - x, so d(e^lambda x)/dlambda =
e^lambda D and the exact step from sigma to sigma_next (h = lambda_next - lambda > 0) is

    x_next = (sigma_next / sigma) x + sigma_next * integral_lambda^lambda_next e^l D(l) dl.

- Order 1 (D held at D_i): x_next = (sigma_next / sigma) x + (1 - e^-h) D_i. This is DDIM.
- 2M ("multistep"): reuse the previous step's D_{i-1} for the slope, D(l) ~ D_i + (l - lambda) (D_i -
  D_{i-1}) / h_last. The slope term integrates to sigma_next (e^lambda_next (h - 1) + e^lambda) / h_last
  = (h - 1 + e^-h) / h_last; DPM-Solver++ replaces h - 1 + e^-h by (1 - e^-h) h / 2 (equal to second
  order in h), so with r = h_last / h

      D' = (1 + 1 / (2 r)) D_i - 1 / (2 r) D_{i-1},     x_next = (sigma_next / sigma) x + (1 - e^-h) D'.

  One model call per step, second order. The first step (no history) and the last (to sigma = 0,
  where x_next = D_i exactly) are order 1.
- SDE variants (SDE-DPM-Solver++ in Lu et al.; k-diffusion's eta): the same exponential integrator on the
  reverse SDE, whose drift pulls x towards D harder and whose fresh noise makes up the difference. With
  h_eta = (1 + eta) h: x_next = (sigma_next / sigma) e^(-eta h) x + (1 - e^-h_eta) D + [history terms]
  + sigma_next sqrt(1 - e^(-2 eta h)) z, z ~ N(0, I); eta = 0 is the ODE, eta = 1 the reverse SDE.
  2M SDE adds (1 - e^-h_eta) / (2 r) (D_i - D_{i-1}) as above (k-diffusion's "midpoint" form). 3M fits a
  quadratic through D_i, D_{i-1}, D_{i-2}; its first and second differences d1, d2 enter with the
  exponential-integrator weights phi_2 = (e^-h_eta - 1) / h_eta + 1 and phi_3 = phi_2 / h_eta - 1/2.

Noise for the SDE samplers: k-diffusion draws it from a Brownian tree by default (noise that is
consistent across step counts). samod draws independent Gaussians from a `torch.Generator` at every
step, as k-diffusion does when given its `default_noise_sampler`; a `noise(sigma, sigma_next)` callable
replaces the draws, e.g. to inject exactly the noise of a peer implementation in tests.

Noise levels (`get_sigmas`): exp(linspace(log sigma_max, log sigma_min, steps)) then a final 0 - the
same schedule as k-diffusion's `get_sigmas_exponential` and stable-audio-tools' polyexponential
schedule with rho = 1. Stable Audio Open defaults: DPM-Solver++(3M) SDE, 100 steps, CFG 7,
sigma 500 -> 0.3. Text-to-audio starts from x_T = sigma_max * noise (`init_noise`); audio-to-audio from
the encoded init audio plus noise at a chosen level (`audio_to_audio_start`), sampled from that level down.

References: Lu et al. 2022 (DPM-Solver++); Karras et al. 2022 (the denoiser view);
k-diffusion (crowsonkb/k-diffusion, k_diffusion/sampling.py, the reference formulas);
stable-audio-tools (inference/sampling.py, generation.py); Evans et al. 2024 (Stable Audio Open).

Shapes (glossary): B batch, C latent channels (D elsewhere in samod; here D is the denoiser D(x, sigma)),
L latent frames, M context tokens (S text tokens + 2 timing tokens for samod's DiT), E their width.
Taught in notebooks/05_sampling.ipynb.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from tqdm.auto import trange

from samod.cpu import in_pieces

SAMPLERS = ("dpmpp-2m", "dpmpp-2m-sde", "dpmpp-3m-sde")

# A v-model: v = model(x_in (B, C, L), t (B,), **cond) -> (B, C, L)
VModel = Callable[..., Tensor]
# Noise for the SDE samplers: noise(sigma, sigma_next) -> a tensor like x, standard normal
NoiseFn = Callable[[Tensor, Tensor], Tensor]


# ---- noise levels -------------------------------------------------------------------------------------

def sigma_to_t(sigma: Tensor) -> Tensor:
    """VE noise level -> diffusion time: t = atan(sigma) 2 / pi (sigma = 0 -> t = 0, sigma = inf -> t = 1)."""
    return sigma.atan() * 2 / math.pi


def t_to_sigma(t: Tensor) -> Tensor:
    """Diffusion time -> VE noise level: sigma = tan(pi t / 2) = sigma_t / alpha_t."""
    return (t * math.pi / 2).tan()


def get_sigmas(steps: int, sigma_max: float = 500.0, sigma_min: float = 0.3,
               device: torch.device | str | None = None) -> Tensor:
    """The noise levels of `steps` sampler steps: log-uniform from sigma_max down to sigma_min, then 0.

    Returns (steps + 1,) in torch's default dtype (float32 unless changed), as k-diffusion's
    get_sigmas_exponential. The last step goes from sigma_min to 0: a pure denoising step, x = D(x, sigma_min).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (one denoiser call each), got {steps!r}")
    if not sigma_max > sigma_min > 0:
        raise ValueError(f"noise levels must satisfy sigma_max > sigma_min > 0, got sigma_max={sigma_max}, "
                         f"sigma_min={sigma_min} (SAO samples 500 -> 0.3)")
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, device=device)  # (steps,)
    return torch.cat([log_sigmas.exp(), log_sigmas.new_zeros(1)])  # (steps + 1,)


def init_noise(shape: tuple[int, ...], sigma_max: float, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Text-to-audio start: x_T = sigma_max * noise, noise ~ N(0, I)."""
    return sigma_max * torch.randn(shape, generator=generator, device=device, dtype=dtype)


def audio_to_audio_start(init_latent: Tensor, init_noise_level: float,
                         generator: torch.Generator | None = None) -> Tensor:
    """Audio-to-audio start: x = init_latent + init_noise_level * noise.

    Sample it with sigmas = get_sigmas(steps, sigma_max=init_noise_level, sigma_min): the lower the level
    (the spec's range is about 0.1 ... 100), the more of the init audio survives.
    """
    if not init_noise_level > 0:
        raise ValueError(f"init_noise_level must be > 0 (the sigma the sampler starts from), got {init_noise_level}")
    noise = torch.randn(init_latent.shape, generator=generator, device=init_latent.device, dtype=init_latent.dtype)
    return init_latent + init_noise_level * noise


# ---- the denoiser ----------------------------------------------------------------------------------------

def make_uncond(cond: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The unconditional branch of CFG: the same conditioning with the context (text and timing tokens) zeroed.

    Every other entry (the global token, masks) is kept, as CFG dropout does during training.
    """
    if "context" not in cond:
        raise ValueError(f"make_uncond zeros cond['context'] (B, M, E), but cond has only {sorted(cond)}")
    return {**cond, "context": torch.zeros_like(cond["context"])}


CPU_PIECE = 4  # Denoiser.model_v: items per model call on the CPU (samod/cpu.py)


class Denoiser:
    """D(x, sigma) of a v-model, with classifier-free guidance: the function every sampler calls.

    Denoiser(model, cond, uncond, cfg_scale=7.0, cfg_rescale=0.0)(x, sigma) -> D(x, sigma).
    model(x_in, t, **cond) -> v, with x_in (B, C, L), t (B,). cond and uncond are dicts of conditioning
    tensors with batch first (e.g. context (B, M, E), global_cond (B, 2E)); uncond = make_uncond(cond).
    cfg_scale = 1 uses the conditional branch only; otherwise both branches run in one batched call.
    cfg_interval = (lo, hi) guides only where lo < sigma <= hi (sigma_VE; stable-audio-tools gives the same
    interval in t = atan(sigma) 2 / pi) and uses the conditional branch alone elsewhere; the default guides
    at every level.
    """

    def __init__(self, model: VModel, cond: Mapping[str, Tensor] | None = None,
                 uncond: Mapping[str, Tensor] | None = None, *, cfg_scale: float = 1.0, cfg_rescale: float = 0.0,
                 cfg_interval: tuple[float, float] = (0.0, math.inf)):
        for name, value in (("cond", cond), ("uncond", uncond)):
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a dict of conditioning tensors (model(x, t, **{name})) or None, "
                                 f"got {type(value).__name__}; pass cfg_scale and cfg_rescale by keyword")
        if not cfg_scale >= 0:
            raise ValueError(f"cfg_scale must be >= 0 (1 = conditional only, SAO uses 7), got {cfg_scale}")
        if not 0 <= cfg_rescale <= 1:
            raise ValueError(f"cfg_rescale (phi) must be in [0, 1] (0 = plain CFG), got {cfg_rescale}")
        lo, hi = cfg_interval
        if not 0 <= lo < hi:
            raise ValueError(f"cfg_interval must be (lo, hi) noise levels with 0 <= lo < hi (sigma_VE), got {cfg_interval}")
        if cfg_scale != 1 and uncond is None:
            raise ValueError(f"cfg_scale={cfg_scale} needs the unconditional branch: pass uncond=make_uncond(cond)"
                             " (or cfg_scale=1 for the conditional model alone)")
        if uncond is not None and set(uncond) != set(cond or {}):
            raise ValueError(f"cond and uncond must hold the same entries, got {sorted(cond or {})} "
                             f"and {sorted(uncond)}")
        self.model = model
        self.cfg_scale = cfg_scale
        self.cfg_rescale = cfg_rescale
        self.cfg_interval = (float(lo), float(hi))
        self.cond = dict(cond or {})
        self.uncond = None if uncond is None else dict(uncond)

    def model_v(self, x_in: Tensor, t: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """model(x_in, t, **cond) (on the CPU in pieces of CPU_PIECE items: samod/cpu.py, same numbers)."""
        return in_pieces(self.model, CPU_PIECE, x_in, t, **cond)

    def v(self, x_in: Tensor, t: Tensor) -> Tensor:  # (B, C, L), (B,) -> (B, C, L)
        """The model's v with CFG (and its rescale) applied where the noise level is inside cfg_interval."""
        sigma = t_to_sigma(t)  # (B,)
        guided = (self.cfg_interval[0] < sigma) & (sigma <= self.cfg_interval[1])  # (B,)
        if self.cfg_scale == 1 or not guided.any():
            return self.model_v(x_in, t, self.cond)
        both = {k: torch.cat([self.cond[k], self.uncond[k]]) for k in self.cond}  # each (2B, ...)
        v_c, v_u = self.model_v(torch.cat([x_in, x_in]), torch.cat([t, t]), both).chunk(2)  # 2 x (B, C, L)
        v = v_u + self.cfg_scale * (v_c - v_u)  # classifier-free guidance
        if self.cfg_rescale > 0:
            phi = self.cfg_rescale
            v = phi * v * v_c.std(dim=1, keepdim=True) / v.std(dim=1, keepdim=True) + (1 - phi) * v  # std over C
        return v if guided.all() else torch.where(guided[:, None, None], v, v_c)

    def __call__(self, x: Tensor, sigma: Tensor | float) -> Tensor:  # (B, C, L), (B,) or () -> (B, C, L)
        """D(x, sigma) = c_skip x + c_out v(c_in x, t(sigma)): the v-model's estimate of the clean latents."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])[:, None, None]  # (B, 1, 1)
        c_skip = 1 / (sigma**2 + 1)
        c_out = -sigma / (sigma**2 + 1).sqrt()
        c_in = 1 / (sigma**2 + 1).sqrt()
        return c_skip * x + c_out * self.v(c_in * x, sigma_to_t(sigma[:, 0, 0]))


# ---- samplers ---------------------------------------------------------------------------------------------

def _check_sigmas(sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be 1-D with at least 2 levels (steps + 1), got shape {tuple(sigmas.shape)}")
    if not (sigmas[:-1] > 0).all() or not (sigmas[1:] < sigmas[:-1]).all() or sigmas[-1] < 0:
        raise ValueError("sigmas must decrease strictly and stay > 0 except a final 0; build them with get_sigmas")


def _gaussian(x: Tensor, generator: torch.Generator | None) -> NoiseFn:
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@torch.no_grad()
def sample_dpmpp_2m(denoiser: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigmas: Tensor,
                    callback: Callable[[dict], None] | None = None, progress: bool = True) -> Tensor:
    """DPM-Solver++(2M): the deterministic second-order multistep solver of the probability-flow ODE."""
    _check_sigmas(sigmas)
    D_prev = h_prev = None  # the previous step's denoised and step size
    for i in trange(len(sigmas) - 1, disable=not progress, desc="dpmpp-2m"):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        D = denoiser(x, sigma * x.new_ones(x.shape[0]))  # (B, C, L)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": D})
        if sigma_next == 0:
            x = D  # the last step: lambda_next = inf and x_next = D exactly
            continue  # (the loop ends here; `continue`, not `return`, lets the progress bar reach 100 %)
        h = sigma.log() - sigma_next.log()  # h = lambda_next - lambda, lambda = -log sigma
        D_d = D  # order 1 on the first step
        if D_prev is not None:
            r = h_prev / h
            D_d = (1 + 1 / (2 * r)) * D - 1 / (2 * r) * D_prev  # D': D extrapolated to the middle of the step
        x = (sigma_next / sigma) * x - (-h).expm1() * D_d  # x_next = (sigma_next / sigma) x + (1 - e^-h) D'
        D_prev, h_prev = D, h
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(denoiser: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigmas: Tensor,
                        eta: float = 1.0, s_noise: float = 1.0, noise: NoiseFn | None = None,
                        generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                        progress: bool = True) -> Tensor:
    """DPM-Solver++(2M) SDE, midpoint form (k-diffusion's solver_type='midpoint'). eta = 0 is the ODE."""
    _check_sigmas(sigmas)
    noise = _gaussian(x, generator) if noise is None else noise
    D_prev = h_prev = None
    for i in trange(len(sigmas) - 1, disable=not progress, desc="dpmpp-2m-sde"):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        D = denoiser(x, sigma * x.new_ones(x.shape[0]))  # (B, C, L)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": D})
        if sigma_next == 0:
            x = D  # the last step is pure denoising
            continue
        h = sigma.log() - sigma_next.log()  # h = lambda_next - lambda
        h_eta = (1 + eta) * h
        x = (sigma_next / sigma) * (-eta * h).exp() * x - (-h_eta).expm1() * D  # order-1 SDE step
        if D_prev is not None:
            r = h_prev / h
            x = x - 0.5 * (-h_eta).expm1() / r * (D - D_prev)  # 2M correction: slope of D times (1 - e^-h_eta) / 2
        if eta:
            z = noise(sigma, sigma_next)
            x = x + sigma_next * (-(-2 * eta * h).expm1()).sqrt() * s_noise * z  # sigma_next sqrt(1 - e^(-2 eta h)) z
        D_prev, h_prev = D, h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(denoiser: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigmas: Tensor,
                        eta: float = 1.0, s_noise: float = 1.0, noise: NoiseFn | None = None,
                        generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                        progress: bool = True) -> Tensor:
    """DPM-Solver++(3M) SDE: third-order multistep (two previous denoised), Stable Audio Open's default."""
    _check_sigmas(sigmas)
    noise = _gaussian(x, generator) if noise is None else noise
    D_1 = D_2 = h_1 = h_2 = None  # denoised and step sizes one and two steps back
    for i in trange(len(sigmas) - 1, disable=not progress, desc="dpmpp-3m-sde"):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        D = denoiser(x, sigma * x.new_ones(x.shape[0]))  # (B, C, L)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": D})
        if sigma_next == 0:
            x = D  # the last step is pure denoising
            continue
        h = sigma.log() - sigma_next.log()  # h = lambda_next - lambda
        h_eta = (1 + eta) * h
        x = (-h_eta).exp() * x - (-h_eta).expm1() * D  # order-1 SDE step; e^-h_eta = (sigma_next / sigma) e^(-eta h)
        phi_2 = (-h_eta).expm1() / h_eta + 1  # phi_2(h_eta): weight of the first difference
        if D_2 is not None:  # order 3: a quadratic through D, D_1, D_2 (in lambda)
            r0, r1 = h_1 / h, h_2 / h
            d1_0 = (D - D_1) / r0  # first differences, per step h
            d1_1 = (D_1 - D_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)  # the slope at lambda, corrected for curvature
            d2 = (d1_0 - d1_1) / (r0 + r1)  # the curvature
            phi_3 = phi_2 / h_eta - 0.5
            x = x + phi_2 * d1 - phi_3 * d2
        elif D_1 is not None:  # order 2 on the second step
            x = x + phi_2 * (D - D_1) / (h_1 / h)
        if eta:
            z = noise(sigma, sigma_next)
            x = x + sigma_next * (-(-2 * eta * h).expm1()).sqrt() * s_noise * z  # sigma_next sqrt(1 - e^(-2 eta h)) z
        D_1, D_2, h_1, h_2 = D, D_1, h, h_1
    return x


def sample(denoiser: Callable[[Tensor, Tensor], Tensor], x_T: Tensor, sigmas: Tensor, sampler: str = "dpmpp-3m-sde",
           generator: torch.Generator | None = None, progress: bool = True,
           callback: Callable[[dict], None] | None = None) -> Tensor:
    """Run the named sampler (one of SAMPLERS) from x_T at sigmas[0] down to sigmas[-1].

    The SDE samplers draw their noise from `generator` (eta = 1); dpmpp-2m is deterministic and ignores it.
    """
    if sampler == "dpmpp-2m":
        return sample_dpmpp_2m(denoiser, x_T, sigmas, callback=callback, progress=progress)
    if sampler == "dpmpp-2m-sde":
        return sample_dpmpp_2m_sde(denoiser, x_T, sigmas, generator=generator, callback=callback, progress=progress)
    if sampler == "dpmpp-3m-sde":
        return sample_dpmpp_3m_sde(denoiser, x_T, sigmas, generator=generator, callback=callback, progress=progress)
    raise ValueError(f"unknown sampler {sampler!r}; valid names: {', '.join(SAMPLERS)}")
