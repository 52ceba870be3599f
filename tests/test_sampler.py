"""samod.sampler: parity with k-diffusion's samplers and VDenoiser, CFG plumbing, known answers, bad inputs.

Parity runs in float64 (samod and k-diffusion see the same denoiser and the same noise draws) and agrees
to ~1e-12; a float32 run agrees to 1e-5 relative. The known-answer tests need no peer: for Gaussian data
the denoiser and the probability-flow ODE have closed forms.
"""
import math
import re

import pytest
import torch

from kdiffusion_peer import load as load_kdiffusion
from samod.sampler import (CPU_PIECE, SAMPLERS, Denoiser, audio_to_audio_start, get_sigmas, init_noise, make_uncond,
                           sample, sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_dpmpp_3m_sde, sigma_to_t, t_to_sigma)

B, D, L, N, E = 2, 4, 6, 3, 5  # batch, latent channels, latent frames, text tokens, embedding width


class ToyVModel:
    """A fixed random nonlinear v-model over channels: v = W2 tanh(W1 x + a t + P context + G global)."""

    def __init__(self, dtype=torch.float64, width=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
        self.W1, self.a, self.W2 = r(width, D) / D**0.5, r(width), r(D, width) / width**0.5
        self.P, self.G = r(width, E), r(width, 2 * E)
        self.batch_sizes = []  # one entry per call

    def __call__(self, x, t, context=None, global_cond=None):  # (B, D, L), (B,) -> (B, D, L)
        self.batch_sizes.append(x.shape[0])
        h = self.W1 @ x + self.a[:, None] * t[:, None, None]  # (B, W, L)
        if context is not None:
            h = h + (context @ self.P.T).mean(1)[:, :, None]  # (B, N, W) -> (B, W, 1)
        if global_cond is not None:
            h = h + (global_cond @ self.G.T)[:, :, None]  # (B, W, 1)
        return self.W2 @ h.tanh()  # (B, D, L)


def make_cond(dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"context": torch.randn(B, N, E, generator=g, dtype=dtype),
            "global_cond": torch.randn(B, 2 * E, generator=g, dtype=dtype)}


def make_denoiser(dtype=torch.float64, cfg_scale=3.0, cfg_rescale=0.5):
    cond = make_cond(dtype)
    return Denoiser(ToyVModel(dtype), cond, make_uncond(cond), cfg_scale=cfg_scale, cfg_rescale=cfg_rescale)


def seeded_noise(x, seed):
    """noise(sigma, sigma_next): a stream of standard normals like x; two streams with one seed are equal."""
    g = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=g, dtype=x.dtype)


def gaussian_denoiser(s_d):
    """The exact D(x, sigma) = E[x0 | x] for data ~ N(0, s_d^2 I): x s_d^2 / (s_d^2 + sigma^2)."""
    return lambda x, sigma: x * s_d**2 / (s_d**2 + sigma[:, None, None] ** 2)


# ---- noise levels ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 2, 10, 100])
def test_get_sigmas_matches_k_diffusion(steps):
    kd = load_kdiffusion()
    ours = get_sigmas(steps, 500.0, 0.3)
    assert ours.shape == (steps + 1,) and ours.dtype == torch.get_default_dtype() and ours[-1] == 0
    assert torch.equal(ours, kd.sampling.get_sigmas_exponential(steps, 0.3, 500.0))
    # stable-audio-tools builds them as polyexponential with rho = 1: the same levels up to rounding
    torch.testing.assert_close(ours, kd.sampling.get_sigmas_polyexponential(steps, 0.3, 500.0, rho=1.0))


def test_get_sigmas_is_log_uniform_then_zero():
    sigmas = get_sigmas(10, 500.0, 0.3).double()
    # float32 exp(log 500) is 500.00006, as in k-diffusion: equal to float32 rounding
    expected = torch.tensor([500.0, 0.3, 0.0], dtype=torch.float64)
    torch.testing.assert_close(sigmas[[0, -2, -1]], expected, rtol=1e-6, atol=0)
    h = sigmas[:-2].log() - sigmas[1:-1].log()  # equal steps in lambda = -log sigma
    torch.testing.assert_close(h, torch.full_like(h, math.log(500 / 0.3) / 9), rtol=1e-5, atol=0)


def test_sigma_t_round_trip():
    t = torch.linspace(0, 0.999, 50, dtype=torch.float64)
    sigma = t_to_sigma(t)
    torch.testing.assert_close(sigma, torch.sin(t * math.pi / 2) / torch.cos(t * math.pi / 2))  # sigma_t / alpha
    torch.testing.assert_close(sigma_to_t(sigma), t)


# ---- the denoiser ------------------------------------------------------------------------------------------

def test_denoiser_matches_written_formula():
    model, cond = ToyVModel(), make_cond()
    x = torch.randn(B, D, L, dtype=torch.float64) * 3
    sigma = torch.tensor([0.3, 20.0], dtype=torch.float64)
    ours = Denoiser(model, cond)(x, sigma)
    s = sigma[:, None, None]
    written = x / (s**2 + 1) - s / (s**2 + 1).sqrt() * model(x / (s**2 + 1).sqrt(), sigma_to_t(sigma), **cond)
    torch.testing.assert_close(ours, written, rtol=1e-12, atol=1e-12)



def test_large_cpu_batches_run_in_pieces_with_the_same_numbers():
    model, g = ToyVModel(), torch.Generator().manual_seed(3)
    cond = {"context": torch.randn(10, N, E, generator=g, dtype=torch.float64),
            "global_cond": torch.randn(10, 2 * E, generator=g, dtype=torch.float64)}
    x, t = torch.randn(10, D, L, generator=g, dtype=torch.float64), torch.rand(10, generator=g, dtype=torch.float64)
    v = Denoiser(model, cond, make_uncond(cond), cfg_scale=7.0).v(x, t)
    assert model.batch_sizes == [CPU_PIECE] * 5  # both branches (20 items) in pieces
    one = [{k: c[i:i + 1] for k, c in cond.items()} for i in range(10)]  # each item's own conditioning
    each = [Denoiser(model, one[i], make_uncond(one[i]), cfg_scale=7.0).v(x[i:i + 1], t[i:i + 1]) for i in range(10)]
    torch.testing.assert_close(v, torch.cat(each), rtol=1e-12, atol=1e-12)

def test_denoiser_matches_k_diffusion_v_denoiser():
    kd = load_kdiffusion()
    model, cond = ToyVModel(), make_cond()
    x = torch.randn(B, D, L, dtype=torch.float64) * 3
    sigma = torch.tensor([0.3, 20.0], dtype=torch.float64)
    peer = kd.external.VDenoiser(model)(x, sigma, **cond)
    torch.testing.assert_close(Denoiser(model, cond)(x, sigma), peer, rtol=1e-12, atol=1e-12)


def test_denoiser_of_the_exact_v_is_the_exact_denoiser():
    # data ~ N(0, s_d^2): E[v | z_t] = alpha sigma_t (1 - s_d^2) / (alpha^2 s_d^2 + sigma_t^2) z_t
    s_d = 0.5

    def exact_v(z_t, t):
        alpha, sigma_t = torch.cos(t * math.pi / 2)[:, None, None], torch.sin(t * math.pi / 2)[:, None, None]
        return alpha * sigma_t * (1 - s_d**2) / (alpha**2 * s_d**2 + sigma_t**2) * z_t

    x = torch.randn(B, D, L, dtype=torch.float64)
    sigma = torch.tensor([0.1, 50.0], dtype=torch.float64)
    torch.testing.assert_close(Denoiser(exact_v)(x, sigma), gaussian_denoiser(s_d)(x, sigma))


def test_cfg_batched_call_equals_two_calls():
    model, cond = ToyVModel(), make_cond()
    uncond = make_uncond(cond)
    x, t = torch.randn(B, D, L, dtype=torch.float64), torch.tensor([0.2, 0.9], dtype=torch.float64)
    v_c, v_u = model(x, t, **cond), model(x, t, **uncond)
    scale, phi = 7.0, 0.7
    v_cfg = v_u + scale * (v_c - v_u)
    model.batch_sizes.clear()
    torch.testing.assert_close(Denoiser(model, cond, uncond, cfg_scale=scale).v(x, t), v_cfg)
    assert model.batch_sizes == [2 * B]  # one batched call for both branches
    rescaled = phi * v_cfg * v_c.std(dim=1, keepdim=True) / v_cfg.std(dim=1, keepdim=True) + (1 - phi) * v_cfg
    torch.testing.assert_close(Denoiser(model, cond, uncond, cfg_scale=scale, cfg_rescale=phi).v(x, t), rescaled)
    model.batch_sizes.clear()
    torch.testing.assert_close(Denoiser(model, cond, uncond, cfg_scale=1.0).v(x, t), v_c)  # scale 1: cond only
    assert model.batch_sizes == [B]
    torch.testing.assert_close(Denoiser(model, cond, uncond, cfg_scale=0.0).v(x, t), v_u)  # scale 0: uncond



def test_cfg_interval_guides_inside_it_and_runs_the_conditional_branch_alone_outside():
    model, cond = ToyVModel(), make_cond()
    uncond = make_uncond(cond)
    x = torch.randn(B, D, L, dtype=torch.float64)
    interval = (1.0, 10.0)  # sigma_VE
    everywhere = Denoiser(model, cond, uncond, cfg_scale=7.0)
    limited = Denoiser(model, cond, uncond, cfg_scale=7.0, cfg_interval=interval)
    conditional = Denoiser(model, cond, uncond, cfg_scale=1.0)
    for sigma, inside in [(0.5, False), (0.999, False), (1.001, True), (5.0, True), (9.99, True), (10.01, False)]:
        t = sigma_to_t(torch.full((B,), sigma, dtype=torch.float64))
        model.batch_sizes.clear()
        got = limited.v(x, t)
        torch.testing.assert_close(got, (everywhere if inside else conditional).v(x, t))
        assert model.batch_sizes[0] == (2 * B if inside else B)  # outside: one call, the conditional branch
    t = sigma_to_t(torch.tensor([5.0, 50.0], dtype=torch.float64))  # one item inside, one outside
    got = limited.v(x, t)
    torch.testing.assert_close(got[:1], everywhere.v(x, t)[:1])
    torch.testing.assert_close(got[1:], conditional.v(x, t)[1:])
    assert not torch.allclose(everywhere.v(x, t)[1:], conditional.v(x, t)[1:])  # the two differ there
    for bad in [(2.0, 1.0), (-1.0, 3.0), (1.0, 1.0)]:
        with pytest.raises(ValueError, match="cfg_interval"):
            Denoiser(model, cond, uncond, cfg_scale=7.0, cfg_interval=bad)

def test_make_uncond_zeros_context_keeps_global_token():
    cond = make_cond()
    uncond = make_uncond(cond)
    assert torch.equal(uncond["context"], torch.zeros(B, N, E, dtype=torch.float64))
    assert uncond["global_cond"] is cond["global_cond"]
    assert cond["context"].abs().sum() > 0  # the input is untouched


# ---- parity with k-diffusion's samplers ------------------------------------------------------------------

PEERS = {"dpmpp-2m": (sample_dpmpp_2m, "sample_dpmpp_2m"),
         "dpmpp-2m-sde": (sample_dpmpp_2m_sde, "sample_dpmpp_2m_sde"),
         "dpmpp-3m-sde": (sample_dpmpp_3m_sde, "sample_dpmpp_3m_sde")}


def run_both(name, steps, sigma_max, sigma_min, dtype, eta=1.0):
    kd = load_kdiffusion()
    ours_fn, peer_name = PEERS[name]
    denoiser = make_denoiser(dtype)
    sigmas = get_sigmas(steps, sigma_max, sigma_min).to(dtype)
    x_T = init_noise((B, D, L), sigma_max, torch.Generator().manual_seed(0), dtype=dtype)
    sde = name != "dpmpp-2m"
    ours_kw = dict(eta=eta, noise=seeded_noise(x_T, 1)) if sde else {}
    peer_kw = dict(eta=eta, noise_sampler=seeded_noise(x_T, 1)) if sde else {}
    ours = ours_fn(denoiser, x_T, sigmas, progress=False, **ours_kw)
    peer = getattr(kd.sampling, peer_name)(denoiser, x_T, sigmas, disable=True, **peer_kw)
    return ours, peer


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("sigma_max,sigma_min", [(500.0, 0.3), (10.0, 0.03), (1.0, 0.1)])
def test_sampler_matches_k_diffusion_float64(name, steps, sigma_max, sigma_min):
    ours, peer = run_both(name, steps, sigma_max, sigma_min, torch.float64)
    torch.testing.assert_close(ours, peer, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_matches_k_diffusion_float32(name):
    ours, peer = run_both(name, 25, 500.0, 0.3, torch.float32)
    torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["dpmpp-2m-sde", "dpmpp-3m-sde"])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_sde_sampler_eta_matches_k_diffusion(name, eta):
    ours, peer = run_both(name, 10, 500.0, 0.3, torch.float64, eta=eta)
    torch.testing.assert_close(ours, peer, rtol=1e-10, atol=1e-10)


def test_2m_sde_with_eta_zero_is_2m():
    denoiser, sigmas = make_denoiser(), get_sigmas(10).double()
    x_T = init_noise((B, D, L), 500.0, torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(sample_dpmpp_2m_sde(denoiser, x_T, sigmas, eta=0.0, progress=False),
                               sample_dpmpp_2m(denoiser, x_T, sigmas, progress=False))


# ---- known answers (no peer) ---------------------------------------------------------------------------------

def test_dpmpp_2m_solves_the_gaussian_ode_to_second_order():
    # data ~ N(0, s_d^2): the probability-flow ODE keeps x / sqrt(s_d^2 + sigma^2) constant
    s_d = 0.5
    x_T = 500.0 * torch.randn(B, D, L, dtype=torch.float64)
    errors = []
    for steps in (10, 20, 40):
        sigmas = get_sigmas(steps, 500.0, 0.3).double()[:-1]  # stop at sigma_min, before the denoising step
        exact = x_T * math.sqrt(s_d**2 + sigmas[-1] ** 2) / math.sqrt(s_d**2 + sigmas[0] ** 2)
        x = sample_dpmpp_2m(gaussian_denoiser(s_d), x_T, sigmas, progress=False)
        errors.append(((x - exact).abs().max() / exact.abs().max()).item())
    assert errors[0] < 0.05, errors
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3, errors  # halving h quarters the error


@pytest.mark.parametrize("name", ["dpmpp-2m-sde", "dpmpp-3m-sde"])
def test_sde_samplers_draw_the_gaussian_data_distribution(name):
    # the final denoising step returns E[x0 | x at sigma_min], whose std is s_d^2 / sqrt(s_d^2 + sigma_min^2)
    s_d, sigma_min = 0.5, 0.3
    g = torch.Generator().manual_seed(0)
    x_T = init_noise((8, 4, 1000), 500.0, g, dtype=torch.float64)
    x = sample(gaussian_denoiser(s_d), x_T, get_sigmas(50, 500.0, sigma_min).double(), name, g, progress=False)
    assert x.std().item() == pytest.approx(s_d**2 / math.sqrt(s_d**2 + sigma_min**2), rel=0.03)
    assert x.mean().abs().item() < 0.02


# ---- generators, callbacks, progress ---------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_same_sample_other_seed_other_sample(name):
    denoiser, sigmas = make_denoiser(torch.float32), get_sigmas(8)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return sample(denoiser, init_noise((B, D, L), 500.0, g), sigmas, name, generator=g, progress=False)

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_callback_sees_every_step_and_progress_can_be_silenced(capsys):
    seen = []
    sigmas = get_sigmas(5)
    x_T = init_noise((B, D, L), 500.0, torch.Generator().manual_seed(0))
    out = sample(make_denoiser(torch.float32), x_T, sigmas, "dpmpp-3m-sde", torch.Generator().manual_seed(1),
                 progress=False, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(5))
    assert set(seen[0]) == {"i", "x", "sigma", "sigma_next", "denoised"}
    assert seen[0]["sigma"] == sigmas[0] and seen[-1]["sigma_next"] == 0
    assert torch.equal(out, seen[-1]["denoised"])  # the last step returns D(x, sigma_min)
    assert capsys.readouterr().err == ""


def test_audio_to_audio_start():
    init = torch.randn(B, D, L)
    x = audio_to_audio_start(init, 2.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(x, init + 2.0 * torch.randn(B, D, L, generator=torch.Generator().manual_seed(3)))


# ---- bad inputs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda: get_sigmas(0), "steps must be an integer >= 1"),
    (lambda: get_sigmas(10, 0.3, 500.0), "sigma_max > sigma_min > 0"),
    (lambda: get_sigmas(10, 500.0, 0.0), "sigma_max > sigma_min > 0"),
    (lambda: Denoiser(ToyVModel(), cfg_scale=-1.0), "cfg_scale must be >= 0"),
    (lambda: Denoiser(ToyVModel(), 7.0), "cond must be a dict"),
    (lambda: Denoiser(ToyVModel(), make_cond(), make_cond(), cfg_scale=7.0, cfg_rescale=1.5), "cfg_rescale"),
    (lambda: Denoiser(ToyVModel(), make_cond(), {"context": torch.zeros(1)}, cfg_scale=7.0), "the same entries"),
    (lambda: Denoiser(ToyVModel(), make_cond(), cfg_scale=7.0), "uncond=make_uncond(cond)"),
    (lambda: make_uncond({"global_cond": torch.zeros(1)}), "cond['context']"),
    (lambda: sample(make_denoiser(), torch.zeros(B, D, L), get_sigmas(3), "euler"),
     "valid names: dpmpp-2m, dpmpp-2m-sde, dpmpp-3m-sde"),
    (lambda: sample_dpmpp_2m(make_denoiser(), torch.zeros(B, D, L), get_sigmas(3).flip(0)), "decrease"),
    (lambda: audio_to_audio_start(torch.zeros(1), 0.0), "init_noise_level must be > 0"),
])
def test_bad_inputs_raise_errors_that_teach(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
