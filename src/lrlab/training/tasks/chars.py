"""Character-level language models on Python's own standard-library sources.

The corpus is a fixed list of stdlib modules read from disk (``sysconfig``'s stdlib
path), concatenated in that order and cut to ``corpus_chars`` characters: offline,
always present, the same for a given Python. The first 90 % is for training, the last
10 % for validation. Characters outside printable ASCII map to one "unknown" symbol.
Losses are in nats per character.
"""

from __future__ import annotations

import math
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from lrlab.training.tasks._base import Task, TensorPairs

__all__ = ["CORPUS_MODULES", "VOCAB_SIZE", "chars_lstm", "chars_transformer", "encode", "load_corpus"]

CORPUS_MODULES = (
    "textwrap.py", "string.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py", "base64.py",
    "calendar.py", "copy.py", "functools.py", "dataclasses.py", "argparse.py",
)  # fmt: skip
_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
_INDEX = {ch: i for i, ch in enumerate(_ALPHABET)}
_UNKNOWN = len(_ALPHABET)
VOCAB_SIZE = len(_ALPHABET) + 1
_TRAIN_FRACTION = 0.9


@lru_cache(maxsize=4)
def load_corpus(corpus_chars: int = 200_000) -> str:
    """The first ``corpus_chars`` characters of the fixed stdlib corpus."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for name in CORPUS_MODULES:
        path = root / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace").replace("\t", "    ")
        parts.append(text)
        total += len(text)
        if total >= corpus_chars:
            break
    corpus = "".join(parts)[:corpus_chars]
    if len(corpus) < 1000:
        raise RuntimeError(f"the standard-library corpus under {root} is missing or too small")
    return corpus


def encode(text: str) -> torch.Tensor:
    return torch.tensor([_INDEX.get(ch, _UNKNOWN) for ch in text], dtype=torch.long)


def _sequences(ids: torch.Tensor, block_size: int, limit: int | None) -> TensorPairs:
    count = (len(ids) - 1) // block_size
    if limit is not None:
        count = min(count, limit)
    if count < 1:
        raise ValueError(f"block_size {block_size} is longer than the text ({len(ids)} characters)")
    chunks = ids[: count * block_size + 1]
    inputs = chunks[:-1].view(count, block_size)
    targets = chunks[1:].view(count, block_size)
    return TensorPairs(inputs.clone(), targets.clone())


def _split(
    corpus_chars: int, block_size: int, train_size: int | None, val_size: int | None
) -> tuple[TensorPairs, TensorPairs]:
    for name, value in (("corpus_chars", corpus_chars), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    for name, value in (("train_size", train_size), ("val_size", val_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ids = encode(load_corpus(corpus_chars))
    cut = int(len(ids) * _TRAIN_FRACTION)
    return _sequences(ids[:cut], block_size, train_size), _sequences(ids[cut:], block_size, val_size)


class CharLSTM(nn.Module):
    def __init__(self, embed: int = 64, hidden: int = 128, layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB_SIZE)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


class CharTransformer(nn.Module):
    """A small causal (GPT-style) transformer: pre-norm (``norm="pre"``: a LayerNorm before
    each sublayer and one before the head) or post-norm (``norm="post"``: a LayerNorm after
    each residual sum, as in the original transformer and BERT).

    Post-norm is the one that needs a warmup: its gradients near the output are large at
    initialisation, so Adam at its best LR takes oversized first steps without one (Xiong et
    al. 2020, "On layer normalization in the transformer architecture", arXiv 2002.04745).
    """

    def __init__(
        self, block_size: int, d_model: int = 64, heads: int = 4, layers: int = 2, norm: str = "pre"
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, d_model)
        self.position = nn.Parameter(torch.zeros(block_size, d_model))
        nn.init.normal_(self.position, std=0.02)
        pre = norm == "pre"
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True, norm_first=pre
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # post-norm: each block already ends in a LayerNorm, so none is added before the head
        self.norm: nn.Module = nn.LayerNorm(d_model) if pre else nn.Identity()
        self.head = nn.Linear(d_model, VOCAB_SIZE)
        self.register_buffer(
            "mask", nn.Transformer.generate_square_subsequent_mask(block_size), persistent=False
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.position[:length]
        x = self.blocks(x, mask=self.mask[:length, :length], is_causal=True)
        return self.head(self.norm(x))


def chars_lstm(
    corpus_chars: int = 200_000,
    block_size: int = 64,
    train_size: int | None = None,
    val_size: int | None = None,
    hidden: int = 128,
) -> Task:
    """An LSTM character model (the RNN family)."""
    train, val = _split(corpus_chars, block_size, train_size, val_size)
    options = {"corpus_chars": corpus_chars, "block_size": block_size, "train_size": train_size,
               "val_size": val_size, "hidden": hidden}  # fmt: skip
    return Task("chars-lstm", "language_model", 3, 32, lambda: CharLSTM(hidden=hidden), train, val, options)


_NORMS = ("pre", "post")


def chars_transformer(
    corpus_chars: int = 200_000,
    block_size: int = 64,
    train_size: int | None = None,
    val_size: int | None = None,
    d_model: int = 64,
    layers: int = 2,
    norm: Literal["pre", "post"] = "pre",
) -> Task:
    """A causal transformer character model (the Transformer family). ``norm="post"`` puts the
    LayerNorms after the residual sums (post-norm, the layout that needs a warmup at Adam's best
    LRs); the default ``"pre"`` is the pre-norm model, whose runs and numbers it leaves as they were."""
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {', '.join(_NORMS)}, got {norm!r}")
    train, val = _split(corpus_chars, block_size, train_size, val_size)
    options = {"corpus_chars": corpus_chars, "block_size": block_size, "train_size": train_size,
               "val_size": val_size, "d_model": d_model, "layers": layers}  # fmt: skip
    if norm != "pre":  # the default is left out: a pre-norm task keeps the fingerprint its stored runs have
        options["norm"] = norm
    return Task(
        "chars-transformer", "language_model", 3, 32,
        lambda: CharTransformer(block_size, d_model=d_model, layers=layers, norm=norm), train, val, options,
    )  # fmt: skip
