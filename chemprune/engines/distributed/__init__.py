"""Training across processes and machines: DDP on gloo started by torchrun, TernGrad, SmoothOut.

* :class:`DistContext`: rank, world size and the collectives the trainer uses;
* :func:`register_comm_hook`: ``allreduce`` (fp32), ``fp16``, ``powersgd`` or ``terngrad``;
* :class:`SmoothOut`: gradients at uniformly perturbed weights (plain or adaptive);
* :class:`LaunchSpec` / :func:`launch`: the torchrun command behind ``chemprune train --nproc``.
"""

from chemprune.engines.distributed.context import DistContext, WorldSizeError, bytes_written
from chemprune.engines.distributed.hooks import COMM_HOOKS, CommHook, register_comm_hook
from chemprune.engines.distributed.launch import (
    LaunchError,
    LaunchSpec,
    in_torchrun,
    launch,
    parse_endpoint,
    restart_count,
)
from chemprune.engines.distributed.packing import pack_ternary, packed_size, unpack_ternary
from chemprune.engines.distributed.smoothout import SmoothOut
from chemprune.engines.distributed.terngrad import TernGradState, ternarize, terngrad_hook

__all__ = [
    "COMM_HOOKS",
    "CommHook",
    "DistContext",
    "LaunchError",
    "LaunchSpec",
    "SmoothOut",
    "TernGradState",
    "WorldSizeError",
    "bytes_written",
    "in_torchrun",
    "launch",
    "pack_ternary",
    "packed_size",
    "parse_endpoint",
    "register_comm_hook",
    "restart_count",
    "ternarize",
    "terngrad_hook",
    "unpack_ternary",
]
