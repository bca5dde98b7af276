"""2-bit packing of ternary values: exact round trip, 4 values per byte, bad input refused."""

from __future__ import annotations

import pytest
import torch

from chemprune.engines.distributed.packing import pack_ternary, packed_size, unpack_ternary


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 1001])
def test_round_trip_any_length(n):
    g = torch.Generator().manual_seed(n)
    values = torch.randint(-1, 2, (n,), generator=g, dtype=torch.int8)
    packed = pack_ternary(values)
    assert packed.dtype == torch.uint8 and packed.numel() == packed_size(n) == (n + 3) // 4
    assert torch.equal(unpack_ternary(packed, n, dtype=torch.int8), values)


def test_layout_is_two_bits_per_value_lowest_first():
    packed = pack_ternary(torch.tensor([-1, 0, 1, 1, -1]))
    # codes t + 1: 0, 1, 2, 2 -> 0b10_10_01_00; then 0 padded with code 1 -> 0b01_01_01_00
    assert packed.tolist() == [0b10100100, 0b01010100]


def test_float_and_shaped_input():
    values = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    assert torch.equal(unpack_ternary(pack_ternary(values), 4).view(2, 2), values)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="only the values -1, 0 and \\+1"):
        pack_ternary(torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="cannot hold 9"):
        unpack_ternary(torch.zeros(2, dtype=torch.uint8), 9)
    with pytest.raises(ValueError, match="flat uint8"):
        unpack_ternary(torch.zeros(2, dtype=torch.int32), 4)
