"""The T5 text conditioner of Stable Audio Open (the alternative to Stable Audio 2's CLAP).

Stable Audio Open §2.2: "Text conditioning is provided by the pretrained T5-base encoder" (109M
parameters, not trained by SAO). stable-audio-tools' T5Conditioner tokenizes to 128 tokens (padded,
truncated), takes the LAST hidden layer of the encoder and multiplies the padded positions by zero:

    e = T5Encoder(tokens, attention_mask) * mask[..., None]        (B, 128, 768), mask (B, 128)

The DiT then attends to all 128 positions (no attention mask; padding is zero vectors).

Nothing may be downloaded, so there are two ways to build it:
- `T5Conditioner.from_pretrained_local(folder)`: a t5-base checkpoint you have on disk (config.json,
  model.safetensors or pytorch_model.bin, and spiece.model or tokenizer.json): the real SAO encoder;
- `T5Conditioner(T5ConditionerConfig.tiny(), train_t5_tokenizer(prompts, 1024))`: random weights and a
  byte-level BPE trained on the corpus prompts (T5's own tokenizer is a SentencePiece unigram model
  that comes with the checkpoint), with T5's special tokens (<pad> 0, </s> 1, <unk> 2; no <s>). Its
  features are arbitrary but have the right shapes: enough to exercise the DiT's SAO path.

Both conditioners (this and samod.clap.ClapEncoder) expose `features(prompts) -> (embeddings (B, S, H),
mask (B, S) bool)` and the attributes `width` and `max_tokens`. Shapes (glossary): B batch, S text tokens
(128), H width. Taught in notebooks/02_clap.ipynb.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import processors
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast, T5Config, T5EncoderModel

from samod.checkpoints import WEIGHT_FILES, require_files, save_transformers_folder
from samod.clap import tokenize, train_byte_level_bpe

CONFIG_NAME = "samod_t5.json"
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in T5 (pad 0, eos 1)


@dataclass
class T5ConditionerConfig:
    vocab_size: int = 32128  # token embedding rows (t5-base: 32000 SentencePiece pieces + 100 sentinels + 28)
    width: int = 768  # H: d_model
    layers: int = 12  # encoder blocks
    heads: int = 12  # attention heads
    head_dim: int = 64  # d_kv (T5 does not tie it to width / heads)
    mlp: int = 3072  # d_ff, ReLU feed-forward
    max_tokens: int = 128  # S: padded / truncated prompt length (SAT's T5Conditioner)
    relative_buckets: int = 32  # T5's relative-position buckets
    relative_max_distance: int = 128  # distance beyond which buckets are shared

    @staticmethod
    def tiny() -> "T5ConditionerConfig":
        return T5ConditionerConfig(vocab_size=1024, width=64, layers=2, heads=2, head_dim=32, mlp=128)

    @staticmethod
    def small() -> "T5ConditionerConfig":
        # t5-small's encoder
        return T5ConditionerConfig(width=512, layers=6, heads=8, mlp=2048)

    @staticmethod
    def paper() -> "T5ConditionerConfig":
        # t5-base's encoder: 109.6M parameters (Stable Audio Open §2: 109M)
        return T5ConditionerConfig()

    def to_transformers(self) -> T5Config:
        return T5Config(vocab_size=self.vocab_size, d_model=self.width, num_layers=self.layers, num_heads=self.heads,
                        d_kv=self.head_dim, d_ff=self.mlp, relative_attention_num_buckets=self.relative_buckets,
                        relative_attention_max_distance=self.relative_max_distance, feed_forward_proj="relu",
                        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def train_t5_tokenizer(texts: list[str], vocab_size: int, max_tokens: int = 128) -> PreTrainedTokenizerFast:
    """A byte-level BPE with T5's special tokens and template: "prompt </s>" then <pad> (id 0)."""
    tokenizer = train_byte_level_bpe(texts, vocab_size, T5_SPECIALS)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_tokens)


class T5Conditioner(nn.Module):
    """T5 encoder + tokenizer: `features(prompts)` -> last hidden layer with padding zeroed, and the mask."""

    def __init__(self, config: T5ConditionerConfig, tokenizer: PreTrainedTokenizerBase,
                 model: T5EncoderModel | None = None):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.model = model if model is not None else T5EncoderModel(config.to_transformers())
        if len(tokenizer) > self.model.config.vocab_size:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the encoder embeds only "
                             f"{self.model.config.vocab_size}; train it with vocab_size <= that")
        if tokenizer.pad_token_id != self.model.config.pad_token_id:
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_token_id}, T5 with "
                             f"{self.model.config.pad_token_id}: use train_t5_tokenizer or T5's own tokenizer")

    @property
    def width(self) -> int:
        """H: width of the features (768 for t5-base)."""
        return self.model.config.d_model

    @property
    def max_tokens(self) -> int:
        """S: tokens per prompt (128)."""
        return self.config.max_tokens

    def features(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, S, H) last hidden layer, zero at padded positions; (B, S) mask, True on real tokens).

        An empty prompt is the single token </s>: one non-zero vector, then 127 zero vectors.
        """
        device = self.model.shared.weight.device
        tokens = {k: v.to(device) for k, v in tokenize(self.tokenizer, prompts, self.max_tokens).items()}
        mask = tokens["attention_mask"].bool()  # (B, S)
        hidden = self.model(input_ids=tokens["input_ids"], attention_mask=mask).last_hidden_state  # (B, S, H)
        return hidden * mask[..., None], mask  # padded positions multiplied by zero (SAT)

    def save(self, folder: str | Path) -> Path:
        """Write transformers' layout (config.json, model.safetensors, tokenizer files) plus samod_t5.json."""
        return save_transformers_folder(folder, self.model, self.tokenizer, self.config, CONFIG_NAME)

    @classmethod
    def load(cls, folder: str | Path) -> "T5Conditioner":
        """A T5Conditioner written by `save`, in eval mode."""
        folder = Path(folder)
        require_files(folder, [[CONFIG_NAME], ["model.safetensors"], ["tokenizer.json"]], "T5Conditioner.save")
        config = T5ConditionerConfig(**json.loads((folder / CONFIG_NAME).read_text()))
        conditioner = cls(config, AutoTokenizer.from_pretrained(folder, local_files_only=True))
        conditioner.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return conditioner.eval()

    @classmethod
    def from_pretrained_local(cls, folder: str | Path, max_tokens: int = 128) -> "T5Conditioner":
        """A transformers T5 checkpoint on disk (e.g. t5-base, downloaded by you), encoder only, in eval mode."""
        folder = Path(folder)
        require_files(folder, [["config.json"], WEIGHT_FILES, ["tokenizer.json", "spiece.model"]],
                      "T5EncoderModel.save_pretrained + tokenizer.save_pretrained")
        model = T5EncoderModel.from_pretrained(folder, local_files_only=True)
        c = model.config
        config = T5ConditionerConfig(vocab_size=c.vocab_size, width=c.d_model, layers=c.num_layers, heads=c.num_heads,
                                     head_dim=c.d_kv, mlp=c.d_ff, max_tokens=max_tokens,
                                     relative_buckets=c.relative_attention_num_buckets,
                                     relative_max_distance=c.relative_attention_max_distance)
        return cls(config, AutoTokenizer.from_pretrained(folder, local_files_only=True), model).eval()
