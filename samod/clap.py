"""CLAP: the contrastive text-audio model whose text encoder conditions Stable Audio 2's DiT.

Paper 1 §2.4: "a HTSAT-based audio encoder with fusion and a RoBERTa-based text encoder, both trained
from scratch on our dataset with a language-audio contrastive loss", following CLAP (Wu et al. 2023,
LAION-CLAP); the DiT is conditioned on the NEXT-TO-LAST hidden layer of the text encoder: 77 tokens of
768 numbers, not masked (paper 1 Table 1: 125M parameters, the RoBERTa-base text tower). The reference
(stable-audio-tools' stable_audio_2_0.json) uses LAION-CLAP's "HTSAT-base" audio encoder with fusion.

The towers are transformers' CLAP classes (ClapModel = ClapTextModel, a RoBERTa, + ClapAudioModel, the
HTSAT Swin transformer with attentional feature fusion), built from `ClapModelConfig` with random
weights. What is ours to explain:

- The audio front end (`audio_inputs`), LAION-CLAP's: stereo 44.1 kHz -> mono -> 48 kHz -> log-mel
  (Hann window, |STFT|^2, HTK mel filters without normalisation, 10 log10). A clip longer than the
  model's window W (10 s) gives 4 channels: the whole mel squeezed to W (the global view) and 3 random
  W-long crops, one from each third of the clip (the local views; `is_longer` = True); a shorter clip is
  repeated to fill W, padded with zeros, and copied 4 times (`is_longer` = False). The fusion block of
  the audio tower mixes the local views into the global one for the clips marked longer. Written in
  torch (transformers' ClapFeatureExtractor does the same in numpy, only for 64 mel bins and with
  numpy's global random state); crops are drawn from a torch.Generator.
- The tokenizer: no pretrained one may be downloaded, so a byte-level BPE (RoBERTa's scheme and
  special tokens) is trained on the corpus prompts (`train_clap_tokenizer`). Byte-level: any text,
  emoji and accents included, encodes without an unknown token.
- The contrastive loss (`contrastive_loss`), CLIP's symmetric InfoNCE with a learned temperature:
      logits_at = exp(s) * a_i . t_j   (s = logit_scale_a, initialised to log(1/0.07), kept in [0, log 100])
      L = ( CE(logits_at, Y) + CE(logits_at^T, Y) ) / 2
  with Y the targets. Prompts are generated from metadata, so two songs of a batch can get the same
  prompt ("ambient"): both audios are then right for that text. Y_ij = [prompt_i == prompt_j] / (number
  of equal prompts), equality ignoring case, spreads the target over them; without duplicates Y = I,
  plain CLIP.

`ClapEncoder` wraps tokenizer + model; `features(prompts)` is what the DiT consumes. Training it
(the stage, the recipe per profile, train_clap) is samod/clap_training.py, evaluating it (retrieval,
zero-shot genres) samod/clap_evaluation.py, loading it (load_clap) samod/weights.py. Shapes (glossary): B batch, A audio channels (2), T samples,
N mel frames, M mel bins, S text tokens (77), H text width, P projection width. Taught in
notebooks/02_clap.ipynb.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (AutoTokenizer, ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig,
                          PreTrainedTokenizerBase, RobertaTokenizer)

from samod.audio import resample
from samod.checkpoints import WEIGHT_FILES, require_files, save_transformers_folder
from samod.profiles import SAMPLE_RATE

CLAP_SAMPLE_RATE = 48000  # Hz: LAION-CLAP's audio rate
PATCH = 4  # HTSAT patch size and stride on the mel "image" (LAION-CLAP)
CONFIG_NAME = "samod_clap.json"  # our ClapModelConfig, next to transformers' config.json
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as RoBERTa (pad 1, bos 0, eos 2)


@dataclass
class ClapModelConfig:
    # text encoder (RoBERTa)
    vocab_size: int = 50265  # rows of the token embedding; the trained BPE may use fewer
    text_width: int = 768  # H: hidden size, the width of the DiT's text tokens
    text_layers: int = 12  # transformer layers; the DiT reads the output of layer text_layers - 1
    text_heads: int = 12  # attention heads
    text_mlp: int = 3072  # feed-forward width
    max_tokens: int = 77  # S: prompts are padded / truncated to this many tokens (with <s> and </s>)
    max_positions: int = 514  # position embeddings (RoBERTa: 512 + 2, ids start after the pad id)
    # audio front end (LAION-CLAP)
    mel_bins: int = 64  # M
    fft_size: int = 1024  # STFT size and Hann window length, at 48 kHz
    hop_length: int = 480  # 10 ms: 100 mel frames per second
    f_min: float = 50.0  # Hz, lowest mel filter edge
    f_max: float = 14000.0  # Hz, highest mel filter edge
    window_seconds: float = 10.0  # W: the audio tower sees W seconds; longer clips are fused
    # audio encoder (HTSAT: a Swin transformer on the mel spectrogram folded into a square image)
    spec_size: int = 256  # side of the square image; the mel is folded into spec_size / mel_bins rows
    patch_width: int = 128  # channels of the first stage; stage i has patch_width * 2^i
    depths: tuple[int, ...] = (2, 2, 12, 2)  # Swin blocks per stage (pairs alternate plain / shifted windows)
    audio_heads: tuple[int, ...] = (4, 8, 16, 32)  # attention heads per stage
    window_size: int = 8  # Swin attention window (window_size^2 patches)
    fusion: bool = True  # attentional feature fusion of the global and local views
    # shared embedding space
    projection_dim: int = 512  # P: both towers are projected (MLP) to P and L2-normalised
    logit_scale_init: float = 1 / 0.07  # exp(s) at initialisation (CLIP)

    def __post_init__(self):
        self.depths, self.audio_heads = tuple(self.depths), tuple(self.audio_heads)
        if self.text_width % self.text_heads:
            raise ValueError(f"text_width {self.text_width} must be divisible by text_heads {self.text_heads}")
        if len(self.depths) != len(self.audio_heads):
            raise ValueError(f"depths {self.depths} and audio_heads {self.audio_heads} need one entry per stage")
        for i, heads in enumerate(self.audio_heads):
            if (self.patch_width * 2 ** i) % heads:
                raise ValueError(f"stage {i} is {self.patch_width * 2 ** i} wide, not divisible by {heads} heads")
        if self.spec_size % self.mel_bins or self.spec_size < self.mel_bins:
            raise ValueError(f"spec_size {self.spec_size} must be a multiple of mel_bins {self.mel_bins}: "
                             f"the mel is folded into spec_size / mel_bins rows of a square image")
        if self.window_frames > self.spec_size * self.fold:
            raise ValueError(f"{self.window_seconds} s is {self.window_frames} mel frames, more than the "
                             f"{self.spec_size * self.fold} the image holds (spec_size * spec_size / mel_bins); "
                             f"shorten window_seconds or enlarge spec_size")
        last_grid = self.spec_size // PATCH // 2 ** (len(self.depths) - 1)
        if last_grid < self.window_size:
            raise ValueError(f"the last HTSAT stage sees a {last_grid}x{last_grid} grid, smaller than window_size "
                             f"{self.window_size} (transformers' Swin needs the window to fit); use "
                             f"window_size <= {last_grid}, fewer stages or a larger spec_size")
        if self.max_tokens + 2 > self.max_positions:
            raise ValueError(f"max_positions must be at least max_tokens + 2 = {self.max_tokens + 2}")
        if self.vocab_size < 256 + len(ROBERTA_SPECIALS):
            raise ValueError(f"vocab_size {self.vocab_size} is too small for a byte-level BPE: it needs the 256 "
                             f"byte symbols and {len(ROBERTA_SPECIALS)} special tokens")

    @property
    def fold(self) -> int:
        """How many rows of the square image one mel spectrogram is folded into (4 for LAION-CLAP)."""
        return self.spec_size // self.mel_bins

    @property
    def window_frames(self) -> int:
        """Mel frames of a W-second window (centred STFT: samples // hop + 1; 1001 for 10 s)."""
        return round(self.window_seconds * CLAP_SAMPLE_RATE) // self.hop_length + 1

    @staticmethod
    def tiny() -> "ClapModelConfig":
        # 2-core CPU: 1.25M parameters; batch 16 x 10 s: front end 0.19 s, forward+backward 0.15 s. Every
        # feature is kept: fusion, 4 Swin stages with shifted windows, 2 RoBERTa layers (next-to-last = layer 1)
        return ClapModelConfig(vocab_size=1024, text_width=128, text_layers=2, text_heads=4, text_mlp=512,
                               mel_bins=32, window_seconds=5.0, spec_size=128, patch_width=16,
                               depths=(2, 2, 2, 2), audio_heads=(1, 2, 4, 8), window_size=4, projection_dim=128)

    @staticmethod
    def small() -> "ClapModelConfig":
        # one GPU: a 6-layer, 512-wide RoBERTa and LAION-CLAP's HTSAT-tiny (laion/clap-htsat-fused's tower)
        return ClapModelConfig(vocab_size=8192, text_width=512, text_layers=6, text_heads=8, text_mlp=2048,
                               patch_width=96, depths=(2, 2, 6, 2))

    @staticmethod
    def paper() -> "ClapModelConfig":
        # RoBERTa-base (124.6M parameters: the paper's 125M) + HTSAT-base with fusion (SAT stable_audio_2_0.json)
        return ClapModelConfig()

    def to_transformers(self) -> ClapConfig:
        """The transformers ClapConfig of this model (LAION-CLAP's layout; patch 4, stride 4)."""
        text = ClapTextConfig(vocab_size=self.vocab_size, hidden_size=self.text_width,
                              num_hidden_layers=self.text_layers, num_attention_heads=self.text_heads,
                              intermediate_size=self.text_mlp, max_position_embeddings=self.max_positions,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
        audio = ClapAudioConfig(num_mel_bins=self.mel_bins, spec_size=self.spec_size, patch_size=PATCH,
                                patch_stride=[PATCH, PATCH], patch_embeds_hidden_size=self.patch_width,
                                hidden_size=self.patch_width * 2 ** (len(self.depths) - 1),  # last stage width
                                depths=list(self.depths), num_attention_heads=list(self.audio_heads),
                                window_size=self.window_size, enable_fusion=self.fusion)
        return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(),
                          projection_dim=self.projection_dim, logit_scale_init_value=self.logit_scale_init)

    @staticmethod
    def from_transformers(config: ClapConfig, front_end: dict | None = None) -> "ClapModelConfig":
        """The inverse of to_transformers; `front_end` is a ClapFeatureExtractor's preprocessor_config.json."""
        text, audio, fe = config.text_config, config.audio_config, front_end or {}
        return ClapModelConfig(
            vocab_size=text.vocab_size, text_width=text.hidden_size, text_layers=text.num_hidden_layers,
            text_heads=text.num_attention_heads, text_mlp=text.intermediate_size,
            max_positions=text.max_position_embeddings,
            mel_bins=fe.get("feature_size", audio.num_mel_bins), fft_size=fe.get("fft_window_size", 1024),
            hop_length=fe.get("hop_length", 480), f_min=fe.get("frequency_min", 50.0),
            f_max=fe.get("frequency_max", 14000.0), window_seconds=fe.get("max_length_s", 10.0),
            spec_size=audio.spec_size, patch_width=audio.patch_embeds_hidden_size, depths=tuple(audio.depths),
            audio_heads=tuple(audio.num_attention_heads), window_size=audio.window_size,
            fusion=audio.enable_fusion, projection_dim=config.projection_dim,
            logit_scale_init=config.logit_scale_init_value)


# ----------------------------------------------------------------------------------------------------
# Tokenizer: byte-level BPE trained on the corpus prompts

def train_byte_level_bpe(texts: list[str], vocab_size: int, special_tokens: list[str]):
    """A tokenizers.Tokenizer: byte-level BPE (GPT-2 / RoBERTa) with `special_tokens` as ids 0, 1, ...

    Text is split at spaces and punctuation and written as bytes (each byte one of 256 printable
    symbols); all 256 are in the vocabulary, so no text is ever out of vocabulary. BPE then merges the
    most frequent adjacent pair (seen at least twice) into a new token until `vocab_size` tokens.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def train_clap_tokenizer(texts: list[str], vocab_size: int, max_tokens: int = 77) -> RobertaTokenizer:
    """RoBERTa's tokenizer, trained on `texts`: "<s> prompt </s>" then <pad> (id 1) up to max_tokens."""
    tokenizer = train_byte_level_bpe(texts, vocab_size, ROBERTA_SPECIALS)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))  # <s> text </s>
    return RobertaTokenizer(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                            model_max_length=max_tokens)


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_tokens: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask, (B, S): padded to S = max_tokens; longer prompts are cut, with a warning."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a list of strings (one per batch item), got {type(prompts).__name__}"
                        + (f" {prompts[:60]!r}: wrap it in a list" if isinstance(prompts, str) else ""))
    lengths = [len(ids) for ids in tokenizer(list(prompts), verbose=False)["input_ids"]]
    for prompt, length in zip(prompts, lengths):
        if length > max_tokens:
            warnings.warn(f"prompt truncated to {max_tokens} of its {length} tokens (the text encoder never sees "
                          f"the rest): {prompt[:40]!r}...", stacklevel=3)
    return dict(tokenizer(list(prompts), padding="max_length", max_length=max_tokens, truncation=True,
                          return_tensors="pt"))


# ----------------------------------------------------------------------------------------------------
# Audio front end (LAION-CLAP's get_audio_features with "fusion" truncation and "repeatpad" filling)

@lru_cache(maxsize=8)
def mel_filterbank(mel_bins: int, fft_size: int, f_min: float, f_max: float) -> torch.Tensor:
    """(M, fft_size // 2 + 1) HTK-scale triangular filters, not area-normalised (torchaudio's defaults)."""
    import librosa  # librosa: heavy to import (numba), needed only for the mel filters

    return torch.from_numpy(librosa.filters.mel(sr=CLAP_SAMPLE_RATE, n_fft=fft_size, n_mels=mel_bins, fmin=f_min,
                                                fmax=f_max, htk=True, norm=None)).float()


def log_mel(audio_48k: torch.Tensor, config: ClapModelConfig) -> torch.Tensor:
    """(B, T) mono 48 kHz -> (B, N, M) power mel spectrogram in dB, N = T // hop + 1."""
    window = torch.hann_window(config.fft_size, device=audio_48k.device)  # periodic Hann
    filters = mel_filterbank(config.mel_bins, config.fft_size, config.f_min, config.f_max).to(audio_48k.device)
    with torch.autocast(audio_48k.device.type, enabled=False):  # float32 even in a bf16 training step
        spectrum = torch.stft(audio_48k.float(), config.fft_size, config.hop_length, window=window, center=True,
                              pad_mode="reflect", return_complex=True)  # (B, F, N)
        mel = torch.einsum("mf,bfn->bnm", filters, spectrum.abs() ** 2)  # (B, N, M)
        return 10 * torch.log10(mel.clamp(min=1e-10))  # dB, floor -100 dB


def to_clap_rate(audio_44k: torch.Tensor) -> torch.Tensor:
    """(B, A, T) at 44.1 kHz -> (B, T') mono at 48 kHz, T' = round(T * 48000 / 44100) (soxr, on the CPU)."""
    mono = audio_44k.float().mean(dim=1)  # (B, T): the mean of the channels, as SAT's CLAP conditioner
    length = (mono.shape[1] * CLAP_SAMPLE_RATE + SAMPLE_RATE // 2) // SAMPLE_RATE
    resampled = resample(mono.detach().cpu().numpy(), SAMPLE_RATE, CLAP_SAMPLE_RATE)[:, :length]  # (B, ~T')
    resampled = np.pad(resampled, ((0, 0), (0, length - resampled.shape[1])))  # (B, T')
    return torch.from_numpy(resampled).to(audio_44k.device)


def audio_inputs(audio_44k: torch.Tensor, config: ClapModelConfig,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Stereo 44.1 kHz audio (B, A, T) -> the audio tower's inputs.

    Returns input_features (B, 4, N_W, M), N_W = window_frames, and is_longer (B, 1) bool. The crops of
    long clips are drawn from `generator` (None: torch's global RNG, which the Trainer checkpoints): pass a
    seeded generator to get the same embedding twice. As LAION-CLAP, when no clip of the batch is longer
    than W one random clip is marked longer, so that the fusion layers always take part (and get a
    gradient); its 4 views are then the same mel, which the fusion block merely mixes with itself (so a
    short clip's embedding depends a little on whether it was the one marked: LAION-CLAP's behaviour).
    """
    if audio_44k.ndim != 3 or audio_44k.shape[-1] == 0:
        raise ValueError(f"expected audio (batch, channels, samples) at {SAMPLE_RATE} Hz with samples > 0, "
                         f"got shape {tuple(audio_44k.shape)}; add a batch axis with audio[None]")
    mono = to_clap_rate(audio_44k)  # (B, T')
    batch, samples = mono.shape
    window_samples, frames = round(config.window_seconds * CLAP_SAMPLE_RATE), config.window_frames
    longer = torch.zeros(batch, dtype=torch.bool)  # (B,)
    mel = None
    if samples > window_samples:  # fusion: a global view and 3 local crops
        mel = log_mel(mono, config)  # (B, N, M)
        positions = mel.shape[1] - frames + 1  # possible crop starts
        if positions > 1:  # (positions == 1: less than a hop longer than W; the whole mel is the window)
            global_view = F.interpolate(mel[:, None], size=(frames, config.mel_bins), mode="bilinear",
                                        align_corners=False)  # (B, 1, N_W, M): the whole clip squeezed
            thirds = [third if len(third) else np.zeros(1, dtype=int)
                      for third in np.array_split(np.arange(positions), 3)]  # front, middle, back
            starts = torch.stack([torch.as_tensor(third)[torch.randint(len(third), (batch,), generator=generator)]
                                  for third in thirds], dim=1)  # (B, 3)
            local_views = torch.stack([torch.stack([mel[b, s:s + frames] for s in starts[b].tolist()])
                                       for b in range(batch)])  # (B, 3, N_W, M)
            features = torch.cat([global_view, local_views], dim=1)  # (B, 4, N_W, M)
            longer[:] = True
    if not longer.any():
        if mel is None:  # W seconds or shorter: repeat the clip to fill W, then pad with zeros
            repeated = mono.repeat(1, window_samples // samples)  # (B, k T')
            mel = log_mel(F.pad(repeated, (0, window_samples - repeated.shape[1])), config)  # (B, N_W, M)
        features = mel[:, None].expand(-1, 4, -1, -1)  # (B, 4, N_W, M): four copies
        longer[torch.randint(batch, (1,), generator=generator)] = True
    return {"input_features": features.contiguous(), "is_longer": longer[:, None].to(mono.device)}


# ----------------------------------------------------------------------------------------------------
# The model: tokenizer + transformers' ClapModel

class ClapEncoder(nn.Module):
    """CLAP text and audio encoders with their tokenizer and front end; `features` conditions the DiT.

    `model` is a transformers ClapModel (random weights from `config` when not given). Weights are
    trained by the Trainer through `forward`; the other methods are for use (wrap them in torch.no_grad()
    and call .eval() when not training: dropout is on in train mode).
    """

    def __init__(self, config: ClapModelConfig, tokenizer: PreTrainedTokenizerBase, model: ClapModel | None = None):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.model = model if model is not None else ClapModel(config.to_transformers())
        rows, pad_id = self.model.config.text_config.vocab_size, self.model.config.text_config.pad_token_id
        if len(tokenizer) > rows:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the text encoder embeds only {rows}; "
                             f"train the tokenizer with vocab_size <= {rows}")
        if tokenizer.pad_token_id != pad_id:
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_token_id}, the text encoder expects {pad_id} "
                             f"(RoBERTa's <pad>; position ids count from it): use train_clap_tokenizer")

    @property
    def width(self) -> int:
        """H: width of the text features (768 at paper size)."""
        return self.config.text_width

    @property
    def max_tokens(self) -> int:
        """S: text tokens per prompt (77)."""
        return self.config.max_tokens

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale_a.device

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (B, S) on the model's device; see `tokenize`."""
        return {k: v.to(self.device) for k, v in tokenize(self.tokenizer, prompts, self.max_tokens).items()}

    def audio_inputs(self, audio_44k: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """input_features (B, 4, N_W, M) and is_longer (B, 1); see `audio_inputs`."""
        return audio_inputs(audio_44k.to(self.device), self.config, generator)

    def forward(self, input_ids, attention_mask, input_features, is_longer):
        """(audio embeddings (B, P), text embeddings (B, P), both L2-normalised; exp(s), the logit scale).

        One call of ClapModel.forward, so that DDP sees every trained parameter used. The scale is
        logit_scale_a, used in both directions as LAION-CLAP does (logit_scale_t is kept, frozen, only
        so that checkpoints stay in transformers' layout).
        """
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, input_features=input_features,
                         is_longer=is_longer)
        return out.audio_embeds, out.text_embeds, self.model.logit_scale_a.exp()

    def audio_embeddings(self, audio_44k: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, A, T) stereo 44.1 kHz -> (B, P) unit-norm embeddings (crops of clips longer than W from `generator`)."""
        return self.model.get_audio_features(**self.audio_inputs(audio_44k, generator)).pooler_output

    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """B prompts -> (B, P) unit-norm embeddings (the RoBERTa pooler of <s>, projected)."""
        return self.model.get_text_features(**self.tokenize(prompts)).pooler_output

    def text_features(self, prompts: list[str]) -> torch.Tensor:
        """(B, S, H): the next-to-last hidden layer of the text encoder (paper 1 §2.4; SAT feature_layer_ix -2).

        The encoder masks padding inside its attention (LAION-CLAP and SAT pass the tokenizer's mask), but
        every position, padding included, has a feature and none is zeroed. An empty prompt is
        "<s></s>" followed by 75 pads: a valid, prompt-independent context (not a zero one).
        """
        out = self.model.text_model(**self.tokenize(prompts), output_hidden_states=True)
        return out.hidden_states[-2]  # (B, S, H); hidden_states[0] is the embedding layer

    def features(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The DiT's text conditioning: ((B, S, H) text features, (B, S) mask), all True: not masked."""
        features = self.text_features(prompts)
        return features, torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)

    # -- files ----------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write transformers' layout (config.json, model.safetensors, tokenizer files) plus samod_clap.json."""
        return save_transformers_folder(folder, self.model, self.tokenizer, self.config, CONFIG_NAME)

    @classmethod
    def load(cls, folder: str | Path) -> "ClapEncoder":
        """A ClapEncoder written by `save`, in eval mode."""
        folder = Path(folder)
        require_files(folder, [[CONFIG_NAME], ["model.safetensors"], ["tokenizer.json"]], "ClapEncoder.save")
        config = ClapModelConfig(**json.loads((folder / CONFIG_NAME).read_text()))
        encoder = cls(config, AutoTokenizer.from_pretrained(folder, local_files_only=True))
        encoder.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return encoder.eval()

    @classmethod
    def from_pretrained_local(cls, folder: str | Path) -> "ClapEncoder":
        """A transformers CLAP checkpoint on disk (e.g. laion/clap-htsat-fused, downloaded by you), in eval mode.

        The front end follows the folder's preprocessor_config.json when there is one (LAION-CLAP's
        defaults otherwise). Nothing is downloaded: every file must be in `folder`.
        """
        folder = Path(folder)
        require_files(folder, [["config.json"], WEIGHT_FILES, ["tokenizer.json", "vocab.json"]],
                      "ClapModel.save_pretrained + tokenizer.save_pretrained")
        model = ClapModel.from_pretrained(folder, local_files_only=True)
        front_end = folder / "preprocessor_config.json"
        config = ClapModelConfig.from_transformers(
            model.config, json.loads(front_end.read_text()) if front_end.exists() else None)
        return cls(config, AutoTokenizer.from_pretrained(folder, local_files_only=True), model).eval()


# ----------------------------------------------------------------------------------------------------
# The contrastive loss

def positive_targets(prompts: list[str]) -> torch.Tensor:
    """(B, B) targets Y: Y_ij = [prompt_i == prompt_j] / #{k: prompt_k == prompt_i}; rows sum to 1.

    Prompts are compared ignoring case: build_prompt changes case at random, so "METAL" and "metal"
    say the same thing, and neither should be taught to be wrong for the other's audio.
    """
    keys = [prompt.casefold() for prompt in prompts]
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([index[key] for key in keys])  # (B,) one id per distinct prompt
    same = (ids[:, None] == ids[None, :]).float()  # (B, B), the identity when all prompts differ
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor,
                     prompts: list[str]) -> torch.Tensor:
    """Symmetric InfoNCE with multi-positive targets (module docstring), in float32.

    audio_embeds, text_embeds: (B, P) unit vectors, row i of each from the same training pair;
    logit_scale: exp(s); prompts: the B texts (equal texts are all right for each other's audio).
    """
    with torch.autocast(audio_embeds.device.type, enabled=False):  # autocast would run the matmul in bf16
        logits_at = logit_scale.float() * audio_embeds.float() @ text_embeds.float().T  # (B, B): audio i vs text j
        targets = positive_targets(prompts).to(logits_at.device)  # (B, B), symmetric
        return (F.cross_entropy(logits_at, targets) + F.cross_entropy(logits_at.T, targets)) / 2

