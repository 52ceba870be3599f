"""`make gpu-check` (samod.gpu_check) runs on a machine without CUDA: the tiny sizes on the CPU, and it says so.

No time is asserted: the run must complete and write every measurement with its provenance.
"""
import json

import pytest

from samod.gpu_check import main


def test_gpu_check_runs_on_the_cpu_and_writes_its_measurements(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the full check (make gpu-check), minutes long")
    out = tmp_path / "gpu_check.json"
    assert main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "NOTE: no CUDA" in printed and "say nothing about a GPU" in printed
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["profile"] == "tiny"
    assert set(result["stages"]) == {"autoencoder", "clap", "dit", "lora"}
    for name, m in result["stages"].items():
        assert m["steps_per_s"] > 0 and m["flops_per_step"] > 0 and m["bad_steps"] == 0, name
        assert m["mfu"] is None and m["peak_memory_gb"] is None  # no GPU peak to divide by
    assert result["sampling_step"]["steps_per_s"] > 0 and result["sampling_step"]["cfg"]
    assert result["dit_training"]["precision"] == "bfloat16" and result["dit_training"]["bad_steps"] == 0
    assert {"hardware", "commit", "torch", "flash_attn"} <= set(result["provenance"])
    peer = result["against_diffusers"]
    if "skipped" in peer:
        assert "diffusers" in peer["skipped"]
    else:
        for name in ("dit_cfg_call", "autoencoder_decode"):
            assert peer[name]["relative_difference"] < 1e-4, name  # the same weights: the same model
            assert peer[name]["ratio_samod_over_diffusers_speed"] > 0
