"""The benchmark scripts run (at a smoke size): each must execute end to end and print its ratio.

No time is asserted here; the ratios are read from the scripts' output at full size (CONTRIBUTING.md).
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
BENCHMARKS = Path(__file__).parent / "benchmarks"


@pytest.mark.parametrize("script, arguments", [
    ("bench_autoencoder.py", ["--channels", "8", "--seconds", "0.2", "--repeats", "1", "--threads", "1"]),
    ("bench_dit.py", ["--width", "32", "--depth", "1", "--heads", "2", "--frames", "16", "--tokens", "8",
                      "--batch", "1", "--repeats", "1", "--threads", "1", "--device", "cpu"]),
    ("bench_precision.py", ["--channels", "4", "--samples", "4096", "--ae-batch", "1", "--width", "32", "--depth", "1",
                            "--frames", "16", "--dit-batch", "1", "--repeats", "1", "--threads", "1"]),
])
def test_benchmark_runs_and_prints_its_ratio(script, arguments):
    run = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ratio samod / diffusers" in run.stdout or run.stdout.count("ratio bf16 / fp32") == 2, run.stdout
