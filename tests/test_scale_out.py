"""samod/scale_out.py: the memory of DDP training, its activation count checked against a real block's saved tensors."""
import torch

from samod.dit import DiTBlock, DiTConfig, rotary_embedding
from samod.scale_out import GPU_BYTES, block_activation_bytes, ddp_memory, largest_batch, main


def saved_bytes(block, config, batch, tokens, context_tokens=8):
    """Bytes of the distinct tensors autograd keeps for backward of one block forward, under CPU bf16 autocast."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, tokens, config.width, generator=g, requires_grad=True)  # the residual stream (fp32)
    context = torch.randn(batch, context_tokens, config.cond_dim, generator=g)
    freqs = rotary_embedding(torch.arange(tokens), config.rotary_dim)
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x, context, freqs).sum().backward()
    return sum(storages.values())


def test_activation_count_matches_the_tensors_a_block_saves():
    config = DiTConfig(width=64, heads=4, cross_kv_heads=2, cond_dim=32, depth=1)
    torch.manual_seed(0)
    block = DiTBlock(config)
    # the difference of two lengths: weights and their bf16 casts (the same at any length) cancel
    measured = saved_bytes(block, config, 2, 512) - saved_bytes(block, config, 2, 256)
    counted = block_activation_bytes(config, 512, batch=2) - block_activation_bytes(config, 256, batch=2)
    assert abs(measured - counted) <= 0.1 * measured, (measured, counted)


def test_paper_dit_fits_80_gb_under_ddp_with_checkpointing_and_not_without():
    paper = DiTConfig.paper()
    memory = ddp_memory(paper, batch=4, frames=6144)
    assert 1.05e9 < memory.trained_parameters < 1.07e9  # paper 1 Table 1 / SAO: 1.06B in the DiT
    states = sum(v for k, v in memory.parts.items() if not k.startswith("activations"))
    assert states == 26 * memory.trained_parameters  # 4 + 4 + 4 + 8 + 4 + 2 bytes per parameter
    assert memory.fits() and not ddp_memory(paper, batch=4, frames=6144, checkpointing=False).fits()
    most = largest_batch(paper, 6144)
    assert ddp_memory(paper, most, 6144).total <= GPU_BYTES < ddp_memory(paper, most + 1, 6144).total
    assert most >= 1  # DDP fits at least one 285 s example per GPU: no FSDP needed


def test_report_says_whether_ddp_fits(capsys):
    assert main(["--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "DDP fits" in out and "largest batch per GPU" in out
