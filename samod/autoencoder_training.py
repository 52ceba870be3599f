"""Training the snake VAE: reconstruction loss, EnCodec's STFT discriminator, adversarial losses.

Paper 1 §2.1 and Stable Audio Open §4.1 train the autoencoder with a perceptually weighted
multi-resolution STFT reconstruction loss on the mid/side and (weighted 0.5) left/right channels, an
adversarial loss with feature matching from 5 EnCodec-style discriminators, and a KL term weighted
1e-4; the numbers below are those of stable-audio-tools' (SAT)
configs/model_configs/autoencoders/stable_audio_2_0_vae.json:

    L_G = 1.0 * MRSTFT_sd(x̂, x) + 0.5 * MRSTFT(x̂_L, x_L) + 0.5 * MRSTFT(x̂_R, x_R)     reconstruction
        + 0.1 * L_adv + 5.0 * L_fm + 1e-4 * KL                                          adversarial + KL
    L_D = hinge loss of the discriminator

- MRSTFT (auraloss): for each FFT size in 2048..32 (hop fft/4, Hann window of fft samples) the spectral
  convergence ||S - Ŝ||_F / ||S||_F plus the L1 distance of log magnitudes, averaged over the 7 sizes,
  after an A-weighting FIR filter ("perceptual weighting"). MRSTFT_sd is its mean over the sum L+R
  and the difference L-R ("mid/side"); the L and R terms keep the stereo image of each channel.
- The discriminator (EnCodec, Défossez et al. 2022; encodec/msstftd.py) looks at the complex STFT at
  5 scales (FFT 2048..128): real and imaginary parts of each audio channel are the input channels of
  a weight-normed 2-D conv stack with dilations over time and stride 2 over frequency.
- Hinge losses: L_D = sum_scales mean(relu(1 - D(x))) + mean(relu(1 + D(x̂))), L_adv = sum_scales
  -mean(D(x̂)); feature matching L_fm = sum_scales mean_layers mean|f(x) - f(x̂)|.
- Generator and discriminator steps alternate (`AutoencoderStage`: even steps generator, odd steps
  discriminator), each with its own AdamW (betas 0.8, 0.99) and InverseLR schedule.

The recipe per profile (`AutoencoderRecipe.tiny/small/paper`) names the model, losses, optimisers and
run length; `train_autoencoder` trains it on the profile's corpus (or resumes, or loads a finished
run); samod/weights.py loads the trained VAE for the later stages (`load_autoencoder`). Scoring the trained VAE (Table 5,
decode memory) is in samod/autoencoder_evaluation.py.

Shapes (glossary): B batch, A audio channels (2), T samples, F frequency bins, N STFT frames,
C discriminator filters. Taught in notebooks/01_autoencoder.ipynb.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import auraloss
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.data import SongDataset, read_metadata, split_records
from samod.profiles import SAMPLE_RATE, Profile, get_profile, profile_preset
from samod.train import CHECKPOINT_NAME, OptimizerConfig, StepBatches, Trainer, TrainConfig, load_weights


@dataclass
class AutoencoderLossConfig:
    sample_rate: int = SAMPLE_RATE  # Hz, for the A-weighting filter
    stft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)  # MRSTFT sizes; hop fft/4, window fft
    perceptual_weighting: bool = True  # A-weighting FIR filter before the STFTs
    mrstft_weight: float = 1.0  # sum-and-difference MRSTFT; the L and R MRSTFTs get half of it each
    adversarial_weight: float = 0.1  # L_adv
    feature_matching_weight: float = 5.0  # L_fm
    kl_weight: float = 1e-4  # KL term of the VAE bottleneck
    disc_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)  # discriminator scales; hop fft/4, window fft
    disc_filters: int = 64  # C: channels of every discriminator conv
    discriminator_start: int = 0  # steps before which the generator trains alone on reconstruction + KL
    semitone_weight: float = 0.0  # SemitoneLoss, not in the paper's recipe (0: off); the tiny campaign's lever
    semitone_fft: int = 8192  # its STFT size (hop a quarter of it)

    @staticmethod
    def tiny() -> "AutoencoderLossConfig":
        # the paper's losses and scales with a 4x narrower discriminator (16 filters), for CPU
        return AutoencoderLossConfig(disc_filters=16)

    @staticmethod
    def small() -> "AutoencoderLossConfig":
        # 32 filters: SAT's default width; paper 1 §2.1 scales the channels to ~4x the parameters (64)
        return AutoencoderLossConfig(disc_filters=32)

    @staticmethod
    def paper() -> "AutoencoderLossConfig":
        # SAT stable_audio_2_0_vae.json (warmup_steps 0: adversarial from the first step)
        return AutoencoderLossConfig()


def generator_optimizer(profile: str = "paper") -> OptimizerConfig:
    """AdamW of the VAE, SAT stable_audio_2_0_vae.json: lr 1.5e-4, betas (0.8, 0.99), wd 1e-3,
    InverseLR inv_gamma 200000, power 0.5, warmup 0.999. `tiny` warms up in ~100 instead of ~1000
    optimizer steps (warmup 0.99), since a CPU run is only a few thousand steps long."""
    return OptimizerConfig(lr=1.5e-4, betas=(0.8, 0.99), weight_decay=1e-3, inv_gamma=200_000, power=0.5,
                           warmup=_warmup(profile))


def discriminator_optimizer(profile: str = "paper") -> OptimizerConfig:
    """AdamW of the discriminator (same file): as the generator's with lr 3e-4."""
    return OptimizerConfig(lr=3e-4, betas=(0.8, 0.99), weight_decay=1e-3, inv_gamma=200_000, power=0.5,
                           warmup=_warmup(profile))


def _warmup(profile: str) -> float:
    if profile not in ("tiny", "small", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choose tiny, small or paper (e.g. get_profile().name)")
    return 0.99 if profile == "tiny" else 0.999


# ----------------------------------------------------------------------------------------------------
# Reconstruction loss (auraloss)

class ReconstructionLoss(nn.Module):
    """1.0 * MRSTFT_sd + 0.5 * MRSTFT_L + 0.5 * MRSTFT_R (times mrstft_weight): auraloss's losses, written out.

    For each FFT size n (hop n/4, Hann window of n, torch.stft's centred reflect padding), with a the
    A-weighting FIR (auraloss's 101-tap least-squares fit) and |.| clamped as sqrt(max(re^2 + im^2, 1e-8)):

        X = STFT_n(a * x̂),  Y = STFT_n(a * x)           per channel, batch together
        SC(X, Y)   = ||Y| - |X||_F / ||Y||_F             spectral convergence over the whole batch
        LOG(X, Y)  = mean |log|X| - log|Y||
        M_n(X, Y)  = SC + LOG,    MRSTFT = mean over the sizes of M_n

    MRSTFT_sd = (MRSTFT(L + R) + MRSTFT(L - R)) / 2 (auraloss.freq.SumAndDifferenceSTFTLoss). The filter and
    the STFT are linear, so STFT(a * (L ± R)) = STFT(a * L) ± STFT(a * R): each size needs the transforms
    of the two channels only, and the filter runs once, where auraloss filters and transforms the sum, the
    difference and each channel again for every size. The same numbers (tests/test_autoencoder_training.py
    compares with auraloss), in fewer operations.
    """

    def __init__(self, config: AutoencoderLossConfig):
        super().__init__()
        self.fft_sizes = tuple(config.stft_fft_sizes)
        self.weight = config.mrstft_weight
        self.largest_fft = max(self.fft_sizes)
        taps = auraloss.perceptual.FIRFilter("aw", fs=config.sample_rate).fir.weight.detach().clone()  # (1, 1, 101)
        self.register_buffer("a_weighting", taps if config.perceptual_weighting else None, persistent=False)
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def _spectra(self, audio: torch.Tensor, n: int) -> torch.Tensor:
        """(B, 2, T) -> (B, 2, F, N) complex STFTs of the two channels."""
        b, _, t = audio.shape
        z = torch.stft(audio.reshape(2 * b, t), n, n // 4, n, getattr(self, f"window_{n}"), return_complex=True)
        return z.reshape(b, 2, *z.shape[1:])

    @staticmethod
    def _distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """SC + LOG of complex spectra x (reconstruction) and y (target) of any one shape."""
        x_mag = (x.real.square() + x.imag.square()).clamp_min(1e-8).sqrt()
        y_mag = (y.real.square() + y.imag.square()).clamp_min(1e-8).sqrt()
        convergence = torch.linalg.vector_norm(y_mag - x_mag) / torch.linalg.vector_norm(y_mag)
        return convergence + (x_mag.log() - y_mag.log()).abs().mean()

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """fake, real: (B, 2, T) -> (weighted loss, {"sum_difference", "left", "right"} unweighted terms)."""
        if fake.shape != real.shape or fake.ndim != 3 or fake.shape[1] != 2:
            raise ValueError(f"expected reconstruction and target of the same shape (batch, 2, samples), got "
                             f"{tuple(fake.shape)} and {tuple(real.shape)}")
        if real.shape[-1] <= self.largest_fft:
            raise ValueError(f"{real.shape[-1]} samples are too few for an STFT of {self.largest_fft}; "
                             f"train on longer crops (the paper's are 65536 samples)")
        with torch.autocast(fake.device.type, enabled=False):  # STFTs and logs in float32 (cuFFT has no bf16)
            b, _, t = real.shape
            both = torch.cat([fake, real]).float()  # (2B, 2, T)
            if self.a_weighting is not None:
                taps = self.a_weighting
                both = F.conv1d(both.reshape(4 * b, 1, t), taps, padding=taps.shape[-1] // 2).reshape(2 * b, 2, t)
            terms = {"sum_difference": 0.0, "left": 0.0, "right": 0.0}
            for n in self.fft_sizes:
                z = self._spectra(both, n)  # (2B, 2, F, N)
                x, y = z[:b], z[b:]  # reconstruction, target
                terms["sum_difference"] = terms["sum_difference"] + 0.5 * (
                    self._distance(x[:, 0] + x[:, 1], y[:, 0] + y[:, 1]) + self._distance(x[:, 0] - x[:, 1], y[:, 0] - y[:, 1]))
                terms["left"] = terms["left"] + self._distance(x[:, 0], y[:, 0])
                terms["right"] = terms["right"] + self._distance(x[:, 1], y[:, 1])
            terms = {k: v / len(self.fft_sizes) for k, v in terms.items()}
        loss = self.weight * (terms["sum_difference"] + 0.5 * terms["left"] + 0.5 * terms["right"])
        return loss, terms


class SemitoneLoss(nn.Module):
    """L1 distance of log power on a semitone axis: a loss that weighs every note equally.

    The MRSTFT's log term weighs every linear frequency bin equally, so the bins above 2 kHz (nine in
    ten of them), where a mix is mostly noise and drums, outvote the few bins that hold the notes, and
    its A-weighting turns the bass down by 20 dB or more. This loss pools the power of one large STFT
    (n = `semitone_fft`, hop n/4, Hann) of each channel into triangular bands centred on the
    equal-tempered semitones from MIDI note 28 (E1, 41 Hz) to 100 (E7, 2.6 kHz), as a constant-Q
    spectrogram does:

        P = |STFT_n(x)|^2 / (sum of the window)^2        power, 0.25 for a full-scale sine's peak
        S = P W                                          (frames, 73 semitones); W: one triangle per row
        L = mean |log(S(x̂) + eps) - log(S(x) + eps)|     eps = 1e-7 (-70 dB)

    Each triangle spans the semitones either side; at the lowest notes the triangles are narrower than a
    bin (5.4 Hz at 8192), so each row is normalised to sum to 1 and holds at least its nearest bin: from C2
    (65 Hz) up every note has its own band's peak, below it neighbouring notes share bins. Not
    part of the paper's recipe; `AutoencoderLossConfig.semitone_weight` > 0 adds it to the generator's loss.
    """

    LOW, HIGH = 28, 100  # MIDI notes of the lowest and highest band

    def __init__(self, n_fft: int = 8192, sample_rate: int = SAMPLE_RATE, eps: float = 1e-7):
        super().__init__()
        self.n_fft, self.eps = n_fft, eps
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft  # (F,) Hz
        notes = torch.arange(self.LOW - 1, self.HIGH + 2, dtype=torch.float64)
        edges = 440.0 * 2 ** ((notes - 69) / 12)  # band k spans edges[k] .. edges[k + 2], peaks at edges[k + 1]
        lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
        filters = torch.minimum(rising, falling).clamp_min(0)  # (bands, F)
        nearest = (bins[None] - centre).abs().argmin(dim=1)
        filters[torch.arange(len(filters)), nearest] = filters[torch.arange(len(filters)), nearest].clamp_min(1.0)
        self.register_buffer("filters", (filters / filters.sum(dim=1, keepdim=True)).float().T, persistent=False)
        window = torch.hann_window(n_fft)
        self.register_buffer("window", window, persistent=False)
        self.scale = float(window.sum()) ** -2

    def semitone_power(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, A, T) -> (B, A, frames, bands) power per semitone band."""
        b, a, t = audio.shape
        z = torch.stft(audio.reshape(b * a, t).float(), self.n_fft, self.n_fft // 4, self.n_fft, self.window,
                       return_complex=True)  # (B A, F, N)
        power = (z.real.square() + z.imag.square()).transpose(1, 2) * self.scale  # (B A, N, F)
        return (power @ self.filters).reshape(b, a, -1, self.filters.shape[1])

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """fake, real: (B, A, T) -> scalar loss."""
        with torch.autocast(fake.device.type, enabled=False):
            x, y = self.semitone_power(fake), self.semitone_power(real)
            return ((x + self.eps).log() - (y + self.eps).log()).abs().mean()


# ----------------------------------------------------------------------------------------------------
# EnCodec's multi-scale complex-STFT discriminator

class STFTDiscriminator(nn.Module):
    """One scale: complex STFT -> 5 conv layers (features) -> 1-channel logit map (EnCodec msstftd.py).

    convs: (3x9) 2A->C; three (3x9) C->C with dilation 1, 2, 4 over time and stride 2 over frequency;
    (3x3) C->C; each followed by LeakyReLU(0.2); then a (3x3) C->1 conv gives the logits.
    Kernels are (time, frequency); every conv is weight-normed.
    """

    def __init__(self, n_fft: int, filters: int, audio_channels: int = 2, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [nn.Conv2d(2 * audio_channels, filters, (3, 9), padding=(1, 4))]
        for d in dilations:
            convs.append(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
        convs.append(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(weight_norm(conv) for conv in convs)
        self.post = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, A, T) -> (B, 2A, N, F): real and imaginary parts, N = (T - n_fft) // hop + 1 frames.

        As torchaudio's Spectrogram(normalized=True, center=False): divided by the window's L2 norm."""
        b, a, t = audio.shape
        with torch.autocast(audio.device.type, enabled=False):  # STFT in float32
            z = torch.stft(audio.float().reshape(b * a, t), self.n_fft, self.hop, window=self.window,
                           center=False, return_complex=True)  # (B A, F, N)
            z = z / self.window.pow(2).sum().sqrt()
        z = z.reshape(b, a, *z.shape[1:])  # (B, A, F, N)
        z = torch.cat([z.real, z.imag], dim=1)  # (B, 2A, F, N): [re L, re R, im L, im R]
        return z.transpose(2, 3)  # (B, 2A, N, F)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, A, T) -> (logits (B, 1, N, F'), 5 feature maps (B, C, N, F_i))."""
        x = self.spectrogram(audio)  # (B, 2A, N, F)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)  # (B, C, N, F_i): F halves at each strided conv
            features.append(x)
        return self.post(x), features  # (B, 1, N, F')


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per FFT size; returns per-scale logits and per-scale lists of feature maps."""

    def __init__(self, fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128), filters: int = 64,
                 audio_channels: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(n, filters, audio_channels) for n in fft_sizes)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        largest = max(s.n_fft for s in self.scales)
        if audio.ndim != 3 or audio.shape[-1] < largest:
            raise ValueError(f"expected audio (batch, channels, samples) with at least {largest} samples "
                             f"(the largest FFT), got {tuple(audio.shape)}")
        outputs = [scale(audio) for scale in self.scales]
        return [logits for logits, _ in outputs], [features for _, features in outputs]


# ----------------------------------------------------------------------------------------------------
# Adversarial losses (SAT models/discriminators.py, as when SA2 was trained: summed over scales;
# SAT 0.0.17+ divides each by the number of scales). Computed in float32 under bf16 autocast.

def discriminator_hinge_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """L_D = sum over scales of mean(relu(1 - D(x))) + mean(relu(1 + D(x̂)))."""
    return sum(F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
               for r, f in zip(real_logits, fake_logits))


def generator_adversarial_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """L_adv = sum over scales of -mean(D(x̂)): the generator raises the logits of its reconstructions."""
    return sum(-f.float().mean() for f in fake_logits)


def feature_matching_loss(real_features: list[list[torch.Tensor]],
                          fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """L_fm = sum over scales of the mean over layers of mean|f(x) - f(x̂)| (L1 of each feature map)."""
    return sum(sum((r.float() - f.float()).abs().mean() for r, f in zip(real, fake)) / len(real)
               for real, fake in zip(real_features, fake_features))


# ----------------------------------------------------------------------------------------------------
# Initialisation and augmentation: training choices that make a small run follow its input

@torch.no_grad()
def data_dependent_init(model: Autoencoder, audio: torch.Tensor, posterior_std: float = 0.005) -> dict[str, float]:
    """Zero every bias, then scale each convolution's weight-norm gain on a real batch (in place).

    With torch's default initialisation every convolution shrinks its input's std (by about 1/sqrt(3)),
    so the decoder halves its signal at each of its blocks: a unit-variance latent reaches the audio
    about 40 dB below what the biases alone produce, and the untrained autoencoder is nearly a constant
    function that training then shapes into one average drone. Salimans & Kingma (2016, §3) initialise
    weight-normed layers from data instead: here, in the order the batch meets them, each convolution's
    gain g is multiplied by one number so that its output has unit std, and the decoder's last one so
    that the output has the batch's std. With the biases at zero the model starts as a function of its
    input (silence in, silence out), and a loss can only be lowered by making the output follow it.

    Last, the posterior's std starts at `posterior_std` for every input (the scale half of the encoder's
    projection: gains x 0.01, bias softplus^-1(posterior_std)). At std softplus(0) = 0.69 the sampled
    latents would be about as much noise as signal, hiding the input from the decoder and decoding
    silence as noise. At 0.005 the noise starts 46 dB below the unit-std means, below the latents of
    a song at -30 dB (random gain), so the decoder can learn to keep them quiet; the KL term (weight
    1e-4) lets training raise it. Returns {convolution name: the factor its gain was scaled by}.
    The architecture is unchanged.
    """
    convs = {m: name for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))}
    for conv in convs:
        if conv.bias is not None:
            conv.bias.zero_()
    target = float(audio.std())
    factors = {}

    def rescale(conv, _inputs, output):  # forward hook: runs once per convolution, in data order
        factor = (target if conv is model.decoder.proj else 1.0) / max(float(output.std()), 1e-12)
        conv.parametrizations.weight.original0.mul_(factor)  # g: the weight is g * v / ||v||
        factors[convs[conv]] = factor
        return output * factor  # what the rescaled layer would have output: later layers see it

    hooks = [conv.register_forward_hook(rescale) for conv in convs]
    try:
        model(audio)
    finally:
        for hook in hooks:
            hook.remove()
    d = model.config.latent_dim
    proj = model.encoder.proj  # (2 D) output channels: D means, then D scales
    proj.parametrizations.weight.original0[d:] *= 0.01
    proj.bias[d:] = math.log(math.expm1(posterior_std))  # softplus(bias) = posterior_std
    return factors


def random_gain(audio: torch.Tensor, max_db: float) -> torch.Tensor:
    """Each example of (B, A, T) scaled by its own gain, uniform in [-max_db, 0] dB (torch's global RNG).

    One constant output cannot match a song at -30 dB and the same song at 0 dB: the augmentation makes
    the loss pay for ignoring the input's level, which a model that follows its input gets for free."""
    if max_db <= 0:
        return audio
    db = -max_db * torch.rand(audio.shape[0], 1, 1, device=audio.device)  # (B, 1, 1)
    return audio * 10 ** (db / 20)


# ----------------------------------------------------------------------------------------------------
# The training stage

class AutoencoderStage:
    """train.Stage of the VAE: even steps train the generator (the autoencoder), odd steps the discriminator.

    Before `loss_config.discriminator_start` the generator trains every step on reconstruction + KL
    only and the discriminator does not train (SAT's warm-up, `warmup_mode="full"`); from then on the
    steps alternate by parity, as SAT alternates them on its global step. The autoencoder gets an EMA.
    A batch is a (B, 2, T) tensor or a dict with "audio" (SongDataset); T must be at least 2048.
    With `gain_db` > 0 each example is first scaled by a random gain in [-gain_db, 0] dB (`random_gain`);
    with `train_biases=False` the autoencoder's biases keep their values (the optimizer never sees them), and
    with `train_encoder=False` so does the encoder: the latents stay the same bit for bit and only the decoder
    learns (a decoder fine-tune, which leaves every latent cache and DiT valid: samod.weights.encoder_sha256).
    """

    def __init__(self, autoencoder: nn.Module, loss_config: AutoencoderLossConfig | None = None,
                 gen_optimizer: OptimizerConfig | None = None, disc_optimizer: OptimizerConfig | None = None,
                 gain_db: float = 0.0, train_biases: bool = True, train_encoder: bool = True):
        self.config = loss_config or AutoencoderLossConfig.paper()
        self.gain_db, self.train_biases, self.train_encoder = gain_db, train_biases, train_encoder
        self.autoencoder = autoencoder
        self.discriminator = MultiScaleSTFTDiscriminator(self.config.disc_fft_sizes, self.config.disc_filters)
        self.reconstruction_loss = ReconstructionLoss(self.config)
        self.semitone_loss = SemitoneLoss(self.config.semitone_fft, self.config.sample_rate) \
            if self.config.semitone_weight > 0 else None
        self.gen_optimizer = gen_optimizer or generator_optimizer("paper")
        self.disc_optimizer = disc_optimizer or discriminator_optimizer("paper")

    def modules(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.autoencoder, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, tuple]:
        generator = [p for name, p in self.autoencoder.named_parameters()
                     if (self.train_biases or not name.endswith(".bias"))
                     and (self.train_encoder or not name.startswith("encoder."))]
        return {"generator": (generator, self.gen_optimizer),
                "discriminator": (self.discriminator.parameters(), self.disc_optimizer)}

    def ema_modules(self) -> list[str]:
        return ["autoencoder"]

    def optimizer_for(self, step: int) -> str:
        """"generator" or "discriminator": who trains at `step`."""
        adversarial = step >= self.config.discriminator_start
        return "discriminator" if adversarial and step % 2 == 1 else "generator"

    def discriminate(self, real: torch.Tensor, fake: torch.Tensor):
        """One discriminator pass over [real; fake] (one forward per step, as DDP prefers).

        Returns (real logits, fake logits, real features, fake features), lists over scales."""
        logits, features = self.discriminator(torch.cat([real, fake]))  # batch 2B
        b = real.shape[0]
        return ([x[:b] for x in logits], [x[b:] for x in logits],
                [[x[:b] for x in scale] for scale in features], [[x[b:] for x in scale] for scale in features])

    def training_step(self, batch, step: int) -> tuple[str, torch.Tensor, dict[str, float]]:
        real = random_gain(batch["audio"] if isinstance(batch, dict) else batch, self.gain_db)  # (B, 2, T)
        config = self.config
        if self.optimizer_for(step) == "discriminator":
            with torch.no_grad():
                fake = self.autoencoder(real).reconstruction  # (B, 2, T), no graph: only D trains
            real_logits, fake_logits, _, _ = self.discriminate(real, fake)
            loss = discriminator_hinge_loss(real_logits, fake_logits)
            return "discriminator", loss, {"disc/real_logit": sum(x.mean() for x in real_logits).item(),
                                           "disc/fake_logit": sum(x.mean() for x in fake_logits).item()}

        out = self.autoencoder(real)
        fake = out.reconstruction  # (B, 2, T)
        reconstruction, terms = self.reconstruction_loss(fake, real)
        loss = reconstruction + config.kl_weight * out.kl
        numbers = {f"mrstft/{k}": v.item() for k, v in terms.items()} | {"kl": out.kl.item()}
        if self.semitone_loss is not None:
            semitone = self.semitone_loss(fake, real)
            loss = loss + config.semitone_weight * semitone
            numbers["semitone"] = semitone.item()
        if step >= config.discriminator_start:
            _, fake_logits, real_features, fake_features = self.discriminate(real, fake)
            adversarial = generator_adversarial_loss(fake_logits)
            matching = feature_matching_loss([[x.detach() for x in s] for s in real_features], fake_features)
            loss = loss + config.adversarial_weight * adversarial + config.feature_matching_weight * matching
            numbers |= {"adversarial": adversarial.item(), "feature_matching": matching.item()}
        return "generator", loss, numbers


# ----------------------------------------------------------------------------------------------------
# The recipe per profile: train and save

@dataclass
class AutoencoderRecipe:
    model: AutoencoderConfig  # the architecture
    losses: AutoencoderLossConfig  # loss weights and discriminator
    generator: OptimizerConfig  # AdamW + InverseLR of the autoencoder
    discriminator: OptimizerConfig  # AdamW + InverseLR of the discriminator
    steps: int  # training steps (generator and discriminator steps alternate after discriminator_start)
    batch_size: int
    crop_samples: int  # training crops (the reference: 65536 samples, 1.5 s)
    ema_decay: float  # EMA of the autoencoder's weights (the released weights are the EMA)
    init: str = "default"  # "default": torch's initialisation (SAT's); "data": data_dependent_init
    gain_db: float = 0.0  # random gain augmentation: each crop scaled by a gain in [-gain_db, 0] dB
    train_biases: bool = True  # False: the biases keep their initial values (zero after init="data")
    train_encoder: bool = True  # False: the encoder keeps its weights (and the latents their values): decoder only

    @staticmethod
    def tiny() -> "AutoencoderRecipe":
        # A CPU-length run: 2000 steps, the adversary joining for the last 400 (200 generator and 200
        # discriminator steps). A run this short needs the data-dependent initialisation (from torch's it
        # decodes one drone for every input), random gain (so that decoded silence stays quiet) and biases
        # kept at zero (trained biases learn the corpus's average sound and play it for silence). Learning
        # rate 6.7x the paper's without warm-up, crops of 16384 samples (0.37 s); the rate decays (halved at
        # step 500, a quarter at 1500) and the EMA keeps about the last 100 steps (decay 0.99), because with
        # a constant rate the EMA of moving weights decodes quieter than the weights. The reference weights
        # stop at step 1500, before the adversary (`make weights`), which made the measurements worse in a
        # run this short (docs/experiments.md, "Notes moved from the code").
        return AutoencoderRecipe(
            AutoencoderConfig.tiny(), replace(AutoencoderLossConfig.tiny(), discriminator_start=1600),
            replace(generator_optimizer("tiny"), lr=1e-3, warmup=0.0, inv_gamma=500, power=1.0),
            replace(discriminator_optimizer("tiny"), lr=2e-3),
            steps=2000, batch_size=4, crop_samples=16384, ema_decay=0.99, init="data", gain_db=30.0,
            train_biases=False)

    def shortened(self, steps: int) -> "AutoencoderRecipe":
        """The same recipe run for `steps`, the adversary joining at the same fraction of the run
        (what a notebook trains live in a few minutes)."""
        start = round(self.losses.discriminator_start * steps / self.steps)
        return replace(self, steps=steps, losses=replace(self.losses, discriminator_start=start))

    @staticmethod
    def small() -> "AutoencoderRecipe":
        return AutoencoderRecipe(AutoencoderConfig.small(), AutoencoderLossConfig.small(),
                                 generator_optimizer("small"), discriminator_optimizer("small"),
                                 steps=40_000, batch_size=16, crop_samples=65536, ema_decay=0.999)

    @staticmethod
    def paper() -> "AutoencoderRecipe":
        return AutoencoderRecipe(AutoencoderConfig.paper(), AutoencoderLossConfig.paper(),
                                 generator_optimizer("paper"), discriminator_optimizer("paper"),
                                 steps=1_000_000, batch_size=32, crop_samples=65536, ema_decay=0.9999)

    @staticmethod
    def for_profile(name: str) -> "AutoencoderRecipe":
        return profile_preset(AutoencoderRecipe, name)


def train_autoencoder(recipe: AutoencoderRecipe | None = None, profile: Profile | None = None,
                      progress: bool = True, folder: Path | None = None) -> tuple[Autoencoder, list[dict]]:
    """Train (or resume, or just load a finished run of) the VAE of a profile on its corpus.

    Trains on the training split of the profile's corpus (samod.data.split_records), checkpoints to
    `folder` (default <profile>/checkpoints/autoencoder/, the profile's own VAE) and returns the
    autoencoder with its EMA weights, in eval mode, and the logged history.
    """
    profile = profile or get_profile()
    recipe = recipe or AutoencoderRecipe.for_profile(profile.name)
    folder = Path(folder) if folder is not None else profile.checkpoint_dir / "autoencoder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(asdict(recipe.model), indent=1))
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    dataset = SongDataset(training, window_seconds=recipe.crop_samples / recipe.model.sample_rate, seed=profile.seed)
    batches = StepBatches(dataset, recipe.batch_size, seed=profile.seed)
    torch.manual_seed(profile.seed)
    model = Autoencoder(recipe.model)
    if recipe.init == "data":  # before the Trainer copies the EMA; a resumed run overwrites it anyway
        data_dependent_init(model, batches(0)["audio"])
    elif recipe.init != "default":
        raise ValueError(f"unknown init {recipe.init!r}: choose 'default' or 'data'")
    stage = AutoencoderStage(model, recipe.losses, recipe.generator, recipe.discriminator, recipe.gain_db,
                             recipe.train_biases, recipe.train_encoder)
    config = TrainConfig(steps=recipe.steps, ema_decay=recipe.ema_decay, checkpoint_every=max(recipe.steps // 4, 1),
                         log_every=1, seed=profile.seed, progress=progress, desc="autoencoder")
    history = Trainer(stage, config, folder).fit(lambda step: batches(step)["audio"])
    model.load_state_dict(load_weights(folder / CHECKPOINT_NAME, "autoencoder", ema=True))
    return model.eval(), history
