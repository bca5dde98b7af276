"""Ternary values {-1, 0, +1} packed 2 bits per value, 4 values per byte.

Code of a value ``t`` is ``t + 1`` (0, 1 or 2); value ``4k + j`` sits in bits ``2j..2j+1`` of byte
``k``. The last byte is padded with zeros (code 1) when the length is not a multiple of 4.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pack_ternary", "packed_size", "unpack_ternary"]

_SHIFTS = torch.tensor([0, 2, 4, 6], dtype=torch.uint8)


def packed_size(numel: int) -> int:
    """Bytes needed for ``numel`` ternary values."""
    return (int(numel) + 3) // 4


def pack_ternary(values: Tensor) -> Tensor:
    """Pack a tensor of -1/0/+1 (any integer or float dtype) into a flat ``uint8`` tensor."""
    flat = values.reshape(-1)
    codes = (flat.to(torch.int8) + 1).to(torch.uint8)
    if codes.numel() and int(codes.max()) > 2:
        raise ValueError("pack_ternary takes only the values -1, 0 and +1")
    pad = packed_size(codes.numel()) * 4 - codes.numel()
    if pad:
        codes = torch.cat([codes, torch.ones(pad, dtype=torch.uint8, device=codes.device)])
    quads = codes.view(-1, 4) << _SHIFTS.to(codes.device)
    return quads[:, 0] | quads[:, 1] | quads[:, 2] | quads[:, 3]


def unpack_ternary(packed: Tensor, numel: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """The first ``numel`` values stored in ``packed`` (as ``dtype``: -1, 0 or +1)."""
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise ValueError(f"packed must be a flat uint8 tensor, got {packed.dtype} {packed.shape}")
    if packed.numel() < packed_size(numel):
        raise ValueError(f"{packed.numel()} bytes cannot hold {numel} ternary values")
    codes = (packed.unsqueeze(1) >> _SHIFTS.to(packed.device)) & 3
    return codes.reshape(-1)[:numel].to(dtype) - 1
