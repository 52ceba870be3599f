"""samod.plan: FLOP and parameter counts against hand formulas, the scaling laws against direct counts, the
checkpointing estimate against DiTConfig.gradient_checkpointing, and the committed table against a fresh run."""
import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from samod import plan
from samod.autoencoder import Autoencoder, AutoencoderConfig, vae_bottleneck
from samod.checkpoints import count_parameters
from samod.diffusion_training import DiffusionRecipe
from samod.dit import DiT, DiTConfig
from samod.generation import SamplingConfig
from samod.profiles import REPO_ROOT

COMMITTED = REPO_ROOT / "figures" / "compute_plan.json"


def test_linear_layer_flops_and_memory_match_the_hand_formula():
    torch.manual_seed(0)
    layer = nn.Linear(7, 5)
    x = torch.randn(3, 7)  # no gradient wanted for x: backward computes the weight's gradient only
    counts = plan.measure(lambda: torch.tanh(layer(x)), list(layer.parameters()))
    assert counts["forward"] == 2 * 3 * 7 * 5  # one multiply and one add per weight per row
    assert counts["step"] == 2 * counts["forward"]  # + dL/dW = dy^T x, the same product
    assert counts["memory"]["total"] == 3 * 7 * 4 + 3 * 5 * 4  # fp32: the input (for dW) and tanh's output


def test_dit_block_parameters_match_the_formula_and_the_paper():
    cfg = DiTConfig.paper()
    w, e, h = cfg.width, cfg.cond_dim, cfg.mlp_mult * cfg.width
    block = (3 * w  # three LayerNorm scales, no bias
             + 3 * w * w + w * w  # self-attention: fused q, k, v and the output projection
             + w * w + e * 2 * cfg.cross_kv_heads * cfg.head_dim + w * w  # cross-attention: q, fused k v, out
             + w * 2 * h + 2 * h + h * w + w)  # gated MLP with biases
    with torch.device("meta"):
        one, two = DiT(replace(cfg, depth=1)), DiT(replace(cfg, depth=2))
    assert count_parameters(two) - count_parameters(one) == block
    costs = plan.dit_costs(replace(DiffusionRecipe.tiny(), model=replace(cfg, depth=2)), {"dit_pretrain": 8},
                           21.5, 77, 0.0, SamplingConfig())  # the law at depth 2 (cheap): as built
    assert costs["dit_pretrain"]["parameters"] == count_parameters(two)
    assert count_parameters(one) + (cfg.depth - 1) * block == 1_056_828_544  # the spec's count


def dit_inputs(cfg: DiTConfig, frames: int, device: str = "meta", tokens: int = 77):
    return (torch.zeros(1, cfg.latent_channels, frames, device=device), torch.full((1,), 0.5, device=device),
            torch.zeros(1, tokens + 2, cfg.cond_dim, device=device), torch.zeros(1, 2 * cfg.cond_dim, device=device))


@pytest.fixture(scope="module")
def tiny_dit():
    recipe = DiffusionRecipe.tiny()
    frames = 100  # outside the fitted lengths (16, 32, 64): the laws extrapolate
    return recipe, frames, plan.dit_costs(recipe, {"dit_pretrain": frames}, 21.5, 77, 0.0,
                                          SamplingConfig())["dit_pretrain"]


def test_dit_flops_law_extrapolates_to_a_direct_count(tiny_dit):
    recipe, frames, costs = tiny_dit
    with torch.device("meta"):
        dit = DiT(recipe.model)  # full depth, at a length the law never saw
    direct = plan.measure(lambda: dit(*dit_inputs(recipe.model, frames)))
    assert costs["flops_per_example"] == pytest.approx(direct["step"], rel=1e-9)
    steps = SamplingConfig().steps
    assert costs["flops_per_generated_second"] == pytest.approx(2 * steps * direct["forward"] / (frames / 21.5), rel=1e-9)
    assert plan.law(costs["flops_law_coefficients"]["step"], 0) > 0  # the global token and embeddings
    assert costs["flops_law_coefficients"]["step"][2] > 0  # self-attention: quadratic in the length


def test_dit_memory_law_and_checkpointing_estimate_match_the_real_model(tiny_dit):
    recipe, frames, costs = tiny_dit
    torch.manual_seed(0)
    dit = DiT(recipe.model).train()
    direct, _ = plan.saved_activations(lambda: dit(*dit_inputs(recipe.model, frames, "cpu")),
                                       list(dit.parameters()), list(dit.blocks))
    assert costs["activation_bytes"] == pytest.approx(direct["total"], rel=0.02)
    dit.config.gradient_checkpointing = True  # what the plan's estimate stands for
    kept, _ = plan.saved_activations(lambda: dit(*dit_inputs(recipe.model, frames, "cpu")), list(dit.parameters()))
    # with checkpointing autograd saves what lies outside the blocks and each block's inputs (for its
    # recomputation): the stream h (block_inputs), and once the context and rotary angles all blocks share
    # (without checkpointing, the first block saves those); in backward one block's activations live again
    shared = (77 + 2) * recipe.model.cond_dim * 4 + (frames + 1) * recipe.model.rotary_dim // 2 * 4
    assert kept["total"] == direct["total"] - direct["blocks"] + direct["block_inputs"] + shared
    estimate = kept["total"] + direct["largest_block"] - shared
    assert costs["activation_bytes_checkpointed"] == pytest.approx(estimate, rel=0.02)
    assert costs["activation_bytes_checkpointed"] < costs["activation_bytes"] / 2


def test_autoencoder_flops_are_linear_in_the_samples():
    with torch.device("meta"):
        autoencoder = Autoencoder(AutoencoderConfig.tiny())

    def step(samples):
        audio = torch.zeros(1, 2, samples, device="meta")
        return plan.measure(lambda: autoencoder.decoder(vae_bottleneck(autoencoder.encoder(audio))[0]))["step"]

    lengths = (2 * 2048, 4 * 2048)
    coefficients = plan.fit_law(lengths, [step(n) for n in lengths], 1)
    assert plan.law(coefficients, 9 * 2048) == pytest.approx(step(9 * 2048), rel=1e-9)


def test_fit_law_gives_a_proportional_law_no_intercept():
    # the solver leaves about -1e-6 as the intercept of y = b x; rounded to 6 digits it differed between machines
    assert plan.fit_law([4096, 8192], [616640.3 * 4096, 616640.3 * 8192], 1)[0] == 0.0
    assert plan.fit_law([1, 2], [3.0, 5.0], 1) == pytest.approx([1.0, 2.0])  # a real intercept stays


def test_fit_law_is_exact_through_its_points():
    coefficients = plan.fit_law([1, 2, 3], [6, 17, 34], 2)  # 1 + 2 x + 3 x^2
    assert coefficients == pytest.approx([1, 2, 3])


def test_committed_plan_equals_a_fresh_run(tmp_path):
    committed = json.loads(COMMITTED.read_text())
    fresh = plan.write_plan(list(plan.PROFILES), tmp_path)
    assert fresh["plans"] == committed["plans"]  # everything but the timings
    assert {k: v for k, v in fresh.items() if k != "timings_s"} == {k: v for k, v in committed.items()
                                                                    if k != "timings_s"}
    assert (tmp_path / "compute_plan.md").read_text() == (REPO_ROOT / "figures" / "compute_plan.md").read_text()


def test_every_gap_over_2x_to_the_paper_is_explained():
    paper = json.loads(COMMITTED.read_text())["plans"]["paper"]["stages"]
    assert set(paper) == {"autoencoder", "clap", "dit_pretrain", "dit_finetune"}
    for name, stage in paper.items():
        assert stage["paper_a100_hours"]["stable_audio_2"] > 0
        ratio = stage["gpu_hours"]["A100"] / stage["paper_a100_hours"]["stable_audio_2"]
        assert (stage["gap_note"] is not None) == (not 0.5 <= ratio <= 2.0), name
        assert stage["gpu_hours"]["A100"] == pytest.approx(stage["gpu_hours"]["H100 SXM"] * 989 / 312, rel=1e-5)
