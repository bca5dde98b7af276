"""Hooks into OpenNMT-py 3.5 (this module imports ``onmt``) for compressed checkpoints.

:func:`onmt_hooks` (defined in :mod:`reaction_nmt.modelfile`, under the backend and this
package alike, and re-exported here) lets OpenNMT-py build and load what compression writes:

* shrunk models: a checkpoint's ``opt`` may carry ``compress_shapes`` (parameter name ->
  shape, for tensors whose shape differs from what the options alone build) and
  ``compress_heads`` (attention module -> number of heads). OpenNMT-py derives a layer's
  ``dim_per_head`` from ``hidden_size // heads`` and builds every layer with the same ``heads``
  and ``transformer_ff``, so a model with heads removed (same ``dim_per_head``, fewer heads,
  possibly per layer) cannot be written as plain options. The hook wraps
  ``onmt.model_builder.build_base_model`` (used by ``load_test_model`` for translation and by
  ``build_model`` for training): after the usual build it gives those tensors their recorded
  shapes (:func:`chemprune.engines.prune.resize_to`) and sets ``head_count``, so OpenNMT-py's own
  ``load_state_dict`` then fills them;
* sparse files (:mod:`reaction_nmt.compress.storage`): ``onmt.model_builder.load_checkpoint``
  is wrapped to turn them back into a dense checkpoint.

:func:`masked_training` is the retraining hook: it wraps ``onmt.train_single.build_model`` (to
find the model OpenNMT-py's trainer uses) and ``Optimizer.step`` (to zero the masked weights
again after every optimizer step), so masked retraining runs in OpenNMT-py's own trainer.
Checkpoints written by OpenNMT-py's saver keep the extra ``opt`` attributes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor

from reaction_nmt.modelfile import apply_recorded_shapes, onmt_hooks

__all__ = ["onmt_hooks", "masked_training", "apply_recorded_shapes"]


@torch.no_grad()
def _zero(params: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


@contextlib.contextmanager
def masked_training(
    masks: Mapping[str, Tensor],
    on_step: Callable[[Mapping[str, Tensor], int], object] | None = None,
) -> Iterator[dict]:
    """Masked weights (parameter name -> 0/1 mask) stay zero in OpenNMT-py's trainer.

    ``on_step(params, step)`` runs after every optimizer step (``step`` from 1), before the
    masked weights are zeroed, and may change ``masks`` in place (gradual pruning).
    Yields a dict that receives the trained ``model`` and the number of ``steps`` hooked.
    """
    import onmt.train_single as ts
    from onmt.utils.optimizers import Optimizer

    build, step = ts.build_model, Optimizer.step
    state: dict = {"model": None, "params": None, "steps": 0}

    def build_model(model_opt, opt, vocabs, checkpoint, device_id):
        model = build(model_opt, opt, vocabs, checkpoint, device_id)
        params = dict(model.named_parameters(remove_duplicate=False))
        unknown = sorted(set(masks) - set(params))
        if unknown:
            raise KeyError(f"masks for parameters the model does not have: {unknown[:5]}")
        state["model"], state["params"] = model, params
        _zero(params, masks)
        return model

    def masked_step(self):
        step(self)
        if state["params"] is not None:
            state["steps"] += 1
            if on_step is not None:
                on_step(state["params"], state["steps"])
            _zero(state["params"], masks)

    ts.build_model, Optimizer.step = build_model, masked_step
    try:
        yield state
    finally:
        ts.build_model, Optimizer.step = build, step
