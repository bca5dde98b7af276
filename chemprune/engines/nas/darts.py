"""The registered search engines: DARTS and DARTS- (decaying auxiliary skip connection).

DARTS' known failure is the collapse onto skip connections and parameter-free operations: a
skip edge lets gradients through from the first step, so its ``alpha`` wins before the
parametric operations have learned anything (Zela et al. 2020; Chu et al. 2021). DARTS-
(Chu et al., ICLR 2021) adds an auxiliary skip connection ``beta * x`` beside every mixed
operation, outside the competition, with ``beta`` decaying linearly from ``beta0`` to 0 over
the search: the gradient-flow advantage belongs to the auxiliary path, not to the candidate
``skip``, which then has to win on merit; at the end ``beta = 0`` and the supernet is exactly
the plain one being derived.

References:
    H. Liu, K. Simonyan, Y. Yang, "DARTS: differentiable architecture search", ICLR 2019;
    X. Chu, X. Wang, B. Zhang, S. Lu, X. Wei, J. Yan, "DARTS-: robustly stepping out of
    performance collapse without indicators", ICLR 2021.
"""

from __future__ import annotations

from typing import Any

from chemprune.engines.nas.base import ArchitectureSearch, register_search
from chemprune.engines.nas.mixed import mixed_ops

__all__ = ["Darts", "DartsMinus"]


@register_search("darts")
class Darts(ArchitectureSearch):
    """Plain DARTS (first or second order, see :class:`ArchitectureSearch`)."""


@register_search("darts_minus")
class DartsMinus(ArchitectureSearch):
    """DARTS with DARTS-' auxiliary skip: ``beta`` from ``beta0`` linearly to 0 at
    ``total_steps`` (required).

    Args:
        beta0: the auxiliary skip's starting weight (the paper: 1).
        **kwargs: see :class:`ArchitectureSearch`.
    """

    def __init__(self, *, beta0: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.total_steps is None:
            raise ValueError("darts_minus decays its auxiliary skip over total_steps: give it")
        if not 0 < beta0 <= 10:
            raise ValueError(f"beta0 must be in (0, 10], got {beta0}")
        self.beta0 = float(beta0)
        self.before_step()

    def beta(self, step: int | None = None) -> float:
        t = self.step if step is None else step
        return self.beta0 * max(0.0, 1.0 - t / self.total_steps)

    def before_step(self) -> None:
        b = self.beta()
        for _, op in mixed_ops(self.model):
            op.aux_skip = b

    def derive(self):  # noqa: ANN201
        for _, op in mixed_ops(self.model):
            op.aux_skip = 0.0  # the derived network has no auxiliary path
        return super().derive()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "beta0": self.beta0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.beta0 = float(state.get("beta0", self.beta0))
        self.before_step()
