"""Layers stored as two thinner ones, ``in -> rank -> out``: what low-rank decomposition
(:mod:`chemprune.engines.prune.lowrank`) produces, and how a saved model's low-rank layers are rebuilt
(:func:`apply_low_rank` from the :func:`low_rank_manifest` a checkpoint records).

:class:`LowRankLinear` splits an ``nn.Linear``; :class:`LowRankConv2d` splits an ``nn.Conv2d``
into ``rank`` filters of the original size (stride, padding, dilation kept) followed by a 1x1
convolution to the output channels (Denton et al. 2014's filter basis; Wen et al. 2017 use it
for their low-rank CNNs)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

__all__ = ["LowRankLinear", "LowRankConv2d", "low_rank_manifest", "apply_low_rank", "set_module"]


class _TwoLayers(nn.Module):
    """``second(first(x))``; ``first`` has ``rank`` outputs and no bias, ``second`` the bias
    (subclasses set both)."""

    @property
    def rank(self) -> int:
        return self.first.weight.shape[0]

    @property
    def bias(self) -> Tensor | None:
        return self.second.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x))

    def extra_repr(self) -> str:
        return (
            f"in={self.first.weight.shape[1]}, rank={self.rank}, out={self.second.weight.shape[0]}"
        )


def _check_rank(rank: int, full: int) -> None:
    if not 1 <= rank <= full:
        raise ValueError(f"rank must be in [1, {full}] for this layer, got {rank}")


class LowRankLinear(_TwoLayers):
    """A linear layer as ``in -> rank`` (no bias) then ``rank -> out``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        _check_rank(rank, min(in_features, out_features))
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.first.weight)
        nn.init.xavier_uniform_(self.second.weight)
        if self.second.bias is not None:
            nn.init.zeros_(self.second.bias)


class LowRankConv2d(_TwoLayers):
    """A convolution as ``rank`` filters of its size (no bias; stride, padding and dilation
    kept) then a 1x1 convolution to ``out_channels`` with the bias."""

    def __init__(self, conv: nn.Conv2d, rank: int):
        super().__init__()
        if conv.groups != 1:
            raise ValueError("grouped convolutions are not decomposed")
        _check_rank(rank, min(conv.out_channels, conv.weight[0].numel()))
        self.first = nn.Conv2d(
            conv.in_channels, rank, conv.kernel_size, stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, bias=False, padding_mode=conv.padding_mode,
        )  # fmt: skip
        self.second = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    @property
    def in_channels(self) -> int:
        return self.first.in_channels

    @property
    def out_channels(self) -> int:
        return self.second.out_channels

    def reset_parameters(self) -> None:
        self.first.reset_parameters()
        self.second.reset_parameters()


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


LOW_RANK = (LowRankLinear, LowRankConv2d)


def low_rank_manifest(model: nn.Module) -> dict[str, int]:
    """``{module name: rank}`` of every low-rank layer in ``model``."""
    return {n: m.rank for n, m in model.named_modules() if isinstance(m, LOW_RANK)}


def apply_low_rank(model: nn.Module, manifest: Mapping[str, int]) -> nn.Module:
    """Give a freshly built model the recorded low-rank layers (fresh weights, right shapes),
    ready for ``load_state_dict``."""
    for name, rank in manifest.items():
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Conv2d):
            new: nn.Module = LowRankConv2d(layer, int(rank))
        elif isinstance(layer, nn.Linear):
            new = LowRankLinear(layer.in_features, layer.out_features, int(rank),
                                bias=layer.bias is not None)  # fmt: skip
        else:
            raise KeyError(f"{name} is a {type(layer).__name__}, not a Linear or Conv2d to split")
        set_module(model, name, new.to(device=layer.weight.device, dtype=layer.weight.dtype))
    return model
