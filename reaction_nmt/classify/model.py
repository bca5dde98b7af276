"""A convolutional reaction-class classifier over SMILES tokens.

``ReactionCNN``: token embedding, ``len(channels)`` blocks of ``Conv1d(kernel, same padding) ->
BatchNorm1d -> ReLU`` (the channels that channel pruning removes), a global max over positions
(padding masked) and a linear head over the classes. It takes explicit tensors: ``tokens [B, L]``
(0 = padding) and returns logits ``[B, classes]``; ``features(tokens)`` gives every block's
activations, for class-discriminant scores. Widths are per block, so a pruned model rebuilds from
its config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ReactionCNN"]


class ReactionCNN(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int = 10,
        embed_dim: int = 64,
        channels: Sequence[int] = (128, 128, 128),
        kernel_size: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if vocab_size < 3 or num_classes < 2 or embed_dim < 1 or not channels or min(channels) < 1:
            raise ValueError("vocab_size >= 3, num_classes >= 2 and positive widths are needed")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.vocab_size, self.num_classes, self.kernel_size = vocab_size, num_classes, kernel_size
        self.embed_dim, self.dropout_p = embed_dim, float(dropout)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        convs, norms, width = [], [], embed_dim
        for c in channels:
            convs.append(nn.Conv1d(width, c, kernel_size, padding=kernel_size // 2))
            norms.append(nn.BatchNorm1d(c))
            width = c
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    @property
    def channels(self) -> list[int]:
        return [c.out_channels for c in self.convs]

    def config(self) -> dict:
        return {
            "vocab_size": self.vocab_size, "num_classes": self.num_classes,
            "embed_dim": self.embed_dim, "channels": self.channels,
            "kernel_size": self.kernel_size, "dropout": self.dropout_p,
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: dict) -> ReactionCNN:
        return cls(**config)

    def features(self, tokens: Tensor) -> list[Tensor]:
        """Each block's activations ``[B, C_l, L]`` (padding positions zeroed)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got {list(tokens.shape)}")
        mask = (tokens != 0).unsqueeze(1).float()
        h = self.embed(tokens).transpose(1, 2)
        out = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = torch.relu(norm(conv(h * mask))) * mask
            out.append(h)
        return out

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.features(tokens)[-1]
        # ReLU outputs are >= 0 and padding is 0, so the max over positions ignores padding
        return self.head(self.drop(h.amax(dim=2)))

    def macs(self, length: int) -> int:
        """Multiply-accumulates for one sequence of ``length`` tokens."""
        conv = sum(c.in_channels * c.out_channels * self.kernel_size * length for c in self.convs)
        return conv + self.head.in_features * self.head.out_features

    def extra_repr(self) -> str:
        return f"vocab={self.vocab_size}, embed={self.embed_dim}, channels={self.channels}"
