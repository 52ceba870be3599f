"""Benchmark: encode + decode throughput of samod's autoencoder vs diffusers' AutoencoderOobleck.

Both models are built at the same config with the same weights and timed side by side in one run,
alternating, so machine noise hits both alike. Prints seconds of audio processed per second of
compute for each and the ratio samod / diffusers (> 1: samod is faster).

    .venv/bin/python tests/benchmarks/bench_autoencoder.py [--channels 16] [--seconds 10] [--repeats 5]

diffusers is a test-only dependency (requirements-dev.txt); samod never imports it.
"""
import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stable_audio_peer import oobleck_to_reference  # noqa: E402  the one key mapping the parity test uses

from samod.autoencoder import Autoencoder, AutoencoderConfig, load_reference_state_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=32, help="latent channels x 2 = encoder width")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the audio clip")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # diffusers' old weight_norm
    import diffusers

    latent = a.channels // 2
    peer = diffusers.AutoencoderOobleck(encoder_hidden_size=a.channels, decoder_channels=a.channels,
                                        decoder_input_channels=latent).eval()
    cfg = AutoencoderConfig(channels=a.channels, latent_dim=latent)
    ours = Autoencoder(cfg).eval()
    load_reference_state_dict(ours, {"pretransform.model." + oobleck_to_reference(k, len(cfg.strides)): v
                                     for k, v in peer.state_dict().items()})
    samples = int(a.seconds * cfg.sample_rate) // 2048 * 2048
    audio = torch.randn(a.batch, 2, samples, generator=torch.Generator().manual_seed(0)) * 0.1

    def run_ours():
        with torch.nn.utils.parametrize.cached():  # weight-norm weights computed once per pass
            return ours.decode(ours.encode(audio, sample=False))

    def run_peer():
        return peer.decode(peer.encode(audio).latent_dist.mode()).sample

    with torch.inference_mode():
        assert (run_ours() - run_peer()).abs().max() < 1e-4, "the two models disagree: not a fair comparison"
        times = {"samod": [], "diffusers": []}
        for _ in range(a.repeats):
            for name, fn in (("samod", run_ours), ("diffusers", run_peer)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    audio_seconds = a.batch * samples / cfg.sample_rate
    rate = {k: audio_seconds / statistics.median(v) for k, v in times.items()}
    print(f"config: width {a.channels}, latent {latent}, {a.batch} x {audio_seconds / a.batch:.1f} s stereo, "
          f"{a.threads} threads, {a.repeats} repeats (median)")
    for k, r in rate.items():
        print(f"  {k:9s} {r:8.1f} s of audio per s (encode + decode)")
    print(f"ratio samod / diffusers: {rate['samod'] / rate['diffusers']:.2f}")


if __name__ == "__main__":
    main()
