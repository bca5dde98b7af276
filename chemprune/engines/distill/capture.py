"""Forward hooks that keep the outputs of named submodules (the features to distil)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ["FeatureCapture", "first_tensor"]


def first_tensor(output: Any) -> Tensor:
    """A module's output, or the first tensor of a tuple/list output (e.g. ``nn.LSTM``,
    attention layers returning ``(out, weights)``)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, Tensor):
                return item
    raise TypeError(f"cannot take a feature tensor from a {type(output).__name__} output")


class FeatureCapture:
    """Record the outputs of ``names`` (``model.get_submodule`` paths) on every forward pass.

    ``capture.features[name]`` holds the last output of each module (kept in the graph unless
    ``detach=True``). Use as a context manager, or call :meth:`remove` when done::

        with FeatureCapture(model, ["encoder.layer.1"]) as cap:
            model(x)
            h = cap.features["encoder.layer.1"]

    Args:
        model: the module to watch.
        names: submodule paths.
        select: turns a module's output into the tensor to keep (default :func:`first_tensor`).
        detach: keep detached copies (for a frozen teacher).
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        *,
        select: Callable[[Any], Tensor] = first_tensor,
        detach: bool = False,
    ) -> None:
        if isinstance(names, str):
            names = [names]
        known = dict(model.named_modules())
        missing = [n for n in names if n not in known]
        if missing:
            sample = ", ".join(n for n in list(known)[1:12] if n)
            raise ValueError(
                f"{type(model).__name__} has no submodule {', '.join(map(repr, missing))}; "
                f"it has e.g.: {sample}"
            )
        self.names = list(names)
        self.select = select
        self.detach = detach
        self.features: dict[str, Tensor] = {}
        self._handles = [known[n].register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            t = self.select(output)
            self.features[name] = t.detach() if self.detach else t

        return hook

    def clear(self) -> None:
        self.features = {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"FeatureCapture(names={self.names}, active={bool(self._handles)})"
