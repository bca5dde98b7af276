"""Least-squares refit of a pruned SchNet's block layers (``f2out``, ``out``) to its parent's.

Removing filter channels of a block changes what its convolution aggregates; the layer that reads
the aggregate, ``f2out`` (filter channels -> interaction channels), is linear. So right after the
removal each block's ``f2out`` can be refit in closed form to reproduce the parent's ``f2out``
output from what the pruned model now aggregates, on a sample of training molecules::

    min_{W, b}  sum_atoms || W a_pruned + b - f2out_parent(a_parent) ||^2   (+ ridge)

Blocks are refit in order, each on the inputs the already refit blocks before it give (so the
refit of block ``k`` also absorbs what blocks ``< k`` lost). Columns of channels that are
removed (an aggregate that is zero on every sampled atom, or masked columns of ``f2out``) get
zero weights. Solved by the normal equations in float64 with a ridge of ``ridge`` times the mean
diagonal. This is what the issue's outside measurement did for half the channels of the
converged U0 model (1.107 eV right after removal, 0.129 eV after the refit): a better start for
the fine-tuning, not a replacement for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["LAYERS", "refit_blocks"]

Batch = tuple[Tensor, Tensor, Tensor]  # z [N], pos [N, 3], batch [N]


def _writable(lin: nn.Linear) -> tuple[Tensor, Tensor | None]:
    """The weight tensor to write (the unmasked original when the weight is masked) and the
    column mask (``None`` when unmasked)."""
    if parametrize.is_parametrized(lin, "weight"):
        plist = lin.parametrizations.weight
        mask = getattr(plist[0], "mask", None)
        cols = None if mask is None else (mask != 0).any(dim=0)
        return plist.original, cols
    return lin.weight, None


#: the linear layers of a block that can be refit, in the order they are refit
LAYERS = ("f2out", "out")


@torch.no_grad()
def refit_blocks(
    student: nn.Module,
    teacher: nn.Module,
    batches: Sequence[Batch] | Iterable[Batch],
    *,
    blocks: Sequence[int] | None = None,
    layers: Sequence[str] = ("f2out",),
    ridge: float = 1e-6,
) -> dict[str, list]:
    """Refit the linear ``layers`` of ``student.interactions[b]`` (in place; block by block in
    order, and in :data:`LAYERS` order within a block) to reproduce the same layers' outputs of
    ``teacher`` on ``batches``; returns, per refit layer, its name and the relative residual
    ``||fit - target|| / ||target||`` before and after.

    The student must be the teacher with channels masked or removed upstream of each refit
    layer's output (same block count and output widths). ``out`` is what the block adds to the
    atom features: refitting it too matches the residual stream, not only ``f2out``.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("the refit needs at least one batch of molecules")
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers must be among {LAYERS}, got {list(layers)}")
    n = len(student.interactions)
    if len(teacher.interactions) != n:
        raise ValueError(f"student has {n} blocks, teacher {len(teacher.interactions)}")
    chosen = list(range(n)) if blocks is None else sorted(set(blocks))
    order = [name for name in LAYERS if name in layers]
    s_mode, t_mode = student.training, teacher.training
    student.eval()
    teacher.eval()
    report: dict[str, list] = {"layers": [], "residual_before": [], "residual_after": []}
    try:
        refs = [getattr(teacher.interactions[b], name) for b in chosen for name in order]
        targets = _outputs(teacher, batches, refs)  # the parent's, all in one pass
        for b in chosen:
            for name in order:
                lin = getattr(student.interactions[b], name)
                ref = getattr(teacher.interactions[b], name)
                if lin.out_features != ref.out_features:
                    raise ValueError(
                        f"block {b} {name}: student has {lin.out_features} outputs, "
                        f"teacher {ref.out_features}"
                    )
                target = targets.pop(ref).double()
                inputs = _inputs(student, batches, lin)
                before = _residual(lin, inputs, target)
                _solve_into(lin, inputs, target, ridge)
                report["layers"].append(f"interactions.{b}.{name}")
                report["residual_before"].append(before)
                report["residual_after"].append(_residual(lin, inputs, target))
    finally:
        student.train(s_mode)
        teacher.train(t_mode)
    return report


def _outputs(model: nn.Module, batches: list[Batch], modules: list[nn.Module]) -> dict:
    """Each module's outputs over the batches (float32, concatenated), from one pass."""
    seen: dict[nn.Module, list[Tensor]] = {m: [] for m in modules}
    handles = [
        m.register_forward_hook(lambda mod, _a, out: seen[mod].append(out.detach().float()))
        for m in modules
    ]
    try:
        for z, pos, batch in batches:
            model(z, pos, batch)
    finally:
        for h in handles:
            h.remove()
    return {m: torch.cat(v) for m, v in seen.items()}


def _inputs(model: nn.Module, batches: list[Batch], module: nn.Module) -> Tensor:
    """``module``'s inputs over the batches (float64, concatenated)."""
    seen: list[Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].double()))
    try:
        for z, pos, batch in batches:
            model(z, pos, batch)
    finally:
        handle.remove()
    return torch.cat(seen)


def _residual(lin: nn.Linear, a: Tensor, y: Tensor) -> float:
    fit = a @ lin.weight.double().t()
    if lin.bias is not None:
        fit = fit + lin.bias.double()
    return float((fit - y).norm() / y.norm().clamp_min(1e-30))


def _solve_into(lin: nn.Linear, a: Tensor, y: Tensor, ridge: float) -> None:
    weight, mask_cols = _writable(lin)
    cols = a.abs().amax(dim=0) > 0
    if mask_cols is not None:
        cols &= mask_cols.to(cols.device)
    has_bias = lin.bias is not None
    x = a[:, cols]
    if has_bias:
        x = torch.cat((x, torch.ones_like(x[:, :1])), dim=1)
    gram = x.t() @ x
    lam = ridge * float(gram.diagonal().mean().clamp_min(1e-30))
    gram += lam * torch.eye(gram.size(0), dtype=gram.dtype, device=gram.device)
    sol = torch.linalg.solve(gram, x.t() @ y)  # [k (+1), out]
    new = torch.zeros_like(weight, dtype=torch.float64)
    new[:, cols] = sol[: int(cols.sum())].t()
    weight.copy_(new.to(weight.dtype))
    if has_bias:
        bias = lin.bias
        if parametrize.is_parametrized(lin, "bias"):
            bias = lin.parametrizations.bias.original
        bias.copy_(sol[-1].to(bias.dtype))
