"""The architecture-search engine family: bilevel DARTS updates, owning the training step.

::

    search = NAS_ENGINES.get("darts")(model=supernet, loss=loss_fn, order=2, total_steps=n)
    for step in range(n):
        stats = search.train_step(train_batch, valid_batch)   # alpha on valid, weights on train
    arch = search.derive()                                    # an ordinary module, no mixing

``loss(model, batch) -> scalar tensor`` is the caller's (a task loss, or a distillation loss
from :mod:`chemprune.engines.distill`, see :mod:`chemprune.molecules.schnet.nas_distill`). The supernet holds
:class:`~chemprune.engines.nas.mixed.MixedOp` edges; their ``alpha`` are outside
``model.parameters()`` and have their own optimizer (Adam, lr 3e-4, betas (0.5, 0.999), weight
decay 1e-3: DARTS' settings), so they change only through the validation loss (plus the
optional cost penalty); the weights change only through the training loss.

``order=1`` is first-order DARTS (``grad_alpha L_val(w, alpha)``); ``order=2`` the
second-order approximation of Liu et al. (eq. 7-8): one virtual SGD step
``w' = w - xi * grad_w L_train(w, alpha)``, then
``grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-,
alpha)) / (2 eps)`` with ``w+- = w +- eps * grad_w' L_val(w', alpha)`` and
``eps = 0.01 / ||grad_w' L_val||`` (the finite-difference Hessian-vector product). The virtual
step is plain SGD with ``xi`` (default: the weight optimizer's learning rate), without its
momentum, as the authors' code does when the optimizer has none.

With ``cost_weight > 0`` the validation objective gains ``cost_weight * sum_edges
expected_cost / reference_cost`` (a MAC or latency penalty, costs from the operations'
``cost`` attributes, :meth:`MixedOp.expected_cost`), or with ``cost_target`` only the excess
of that fraction over the target.

References:
    H. Liu, K. Simonyan, Y. Yang, "DARTS: differentiable architecture search", ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.nas.mixed import arch_parameters, derive_modules, genotype, mixed_ops
from chemprune.engines.registry import Registry

__all__ = ["NAS_ENGINES", "ArchitectureSearch", "register_search"]

LossFn = Callable[[nn.Module, Any], Tensor]


class ArchitectureSearch:
    """Base of the search engines (bilevel DARTS updates; subclasses change the schedule of
    the supernet, e.g. DARTS-' decaying auxiliary skip).

    Args:
        model: the supernet (any module with :class:`MixedOp` edges).
        loss: ``loss(model, batch) -> scalar`` for both levels.
        order: 1 (first-order) or 2 (second-order, finite-difference Hessian-vector product).
        lr: learning rate of the default weight optimizer (SGD, momentum 0.9, as DARTS; give
            ``weight_optimizer`` for another).
        weight_optimizer: over ``model.parameters()`` and any auxiliary parameters.
        arch_lr, arch_weight_decay: the architecture optimizer's Adam settings.
        xi: the virtual step's learning rate (second order); default ``lr``.
        max_grad_norm: clip the weights' gradient norm (DARTS: 5).
        cost_weight: weight of the expected-cost penalty (0: none).
        reference_cost: divides the expected cost (e.g. the teacher's MACs), so the penalty is
            a fraction.
        cost_target: with it, only the part of that fraction above the target is penalised
            (``cost_weight * max(0, expected / reference - target)``).
        total_steps: steps of the whole search (for schedules; ``None``: none needed).
        extra_parameters: trained with the weights (e.g. a distillation's adapters).
        warmup_steps: the first steps train the weights only, alpha frozen (PC-DARTS and
            P-DARTS warm up so that the operations are compared after they have learned
            something, not at their initialisation, where a cost penalty alone decides).
    """

    name: str = "base"

    def __init__(
        self,
        *,
        model: nn.Module,
        loss: LossFn,
        order: int = 1,
        lr: float = 0.025,
        weight_optimizer: torch.optim.Optimizer | None = None,
        arch_lr: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        xi: float | None = None,
        max_grad_norm: float | None = 5.0,
        cost_weight: float = 0.0,
        reference_cost: float = 1.0,
        cost_target: float | None = None,
        total_steps: int | None = None,
        extra_parameters: Sequence[nn.Parameter] = (),
        warmup_steps: int = 0,
    ) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (first-order) or 2 (second-order), got {order}")
        edges = list(mixed_ops(model))
        if not edges:
            raise ValueError("the model has no MixedOp: there is no architecture to search")
        for what, v in (("lr", lr), ("arch_lr", arch_lr)):
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{what} must be a positive finite number, got {v}")
        if not (cost_weight >= 0 and math.isfinite(cost_weight)):
            raise ValueError(f"cost_weight must be a finite number >= 0, got {cost_weight}")
        if not reference_cost > 0:
            raise ValueError(f"reference_cost must be positive, got {reference_cost}")
        if cost_target is not None and not 0 < cost_target <= 1:
            raise ValueError(f"cost_target must be in (0, 1], got {cost_target}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.model = model
        self.loss = loss
        self.order = int(order)
        self.weights = [p for p in model.parameters() if p.requires_grad] + list(extra_parameters)
        self.alphas = arch_parameters(model)
        self.weight_optimizer = weight_optimizer or torch.optim.SGD(
            self.weights, lr=lr, momentum=0.9, weight_decay=3e-4
        )
        self.arch_optimizer = torch.optim.Adam(
            self.alphas, lr=arch_lr, betas=(0.5, 0.999), weight_decay=arch_weight_decay
        )
        self.xi = float(lr if xi is None else xi)
        self.max_grad_norm = max_grad_norm
        self.cost_weight = float(cost_weight)
        self.reference_cost = float(reference_cost)
        self.cost_target = cost_target
        self.total_steps = total_steps
        self.warmup_steps = int(warmup_steps)
        self.step = 0

    # ------------------------------------------------------------------ schedule
    def before_step(self) -> None:
        """Called at the start of every :meth:`train_step` (subclasses set schedules here)."""

    # ------------------------------------------------------------------ objectives
    def expected_cost(self) -> Tensor:
        return torch.stack([op.expected_cost() for _, op in mixed_ops(self.model)]).sum()

    def valid_objective(self, batch: Any) -> Tensor:
        loss = self.loss(self.model, batch)
        if self.cost_weight:
            fraction = self.expected_cost() / self.reference_cost
            if self.cost_target is not None:
                fraction = torch.relu(fraction - self.cost_target)
            loss = loss + self.cost_weight * fraction
        return loss

    # ------------------------------------------------------------------ updates
    def arch_gradients(self, train_batch: Any, valid_batch: Any) -> Tensor:
        """Set ``alpha.grad`` (first or second order); returns the validation objective."""
        if self.order == 1:
            loss = self.valid_objective(valid_batch)
            grads = torch.autograd.grad(loss, self.alphas, allow_unused=True)
            self._set_grads(self.alphas, grads)
            return loss.detach()
        return self._second_order(train_batch, valid_batch)

    def _second_order(self, train_batch: Any, valid_batch: Any) -> Tensor:
        w = [p.detach().clone() for p in self.weights]
        g_train = torch.autograd.grad(
            self.loss(self.model, train_batch), self.weights, allow_unused=True
        )
        with torch.no_grad():  # the virtual step w' = w - xi * grad_w L_train
            for p, g in zip(self.weights, g_train, strict=True):
                if g is not None:
                    p.sub_(self.xi * g)
        loss = self.valid_objective(valid_batch)
        grads = torch.autograd.grad(loss, self.alphas + self.weights, allow_unused=True)
        d_alpha, d_w = grads[: len(self.alphas)], grads[len(self.alphas) :]
        d_w = [
            torch.zeros_like(p) if g is None else g for p, g in zip(self.weights, d_w, strict=True)
        ]
        norm = torch.sqrt(sum((g * g).sum() for g in d_w))
        eps = 0.01 / float(norm) if float(norm) > 0 else 0.0
        hvp = [torch.zeros_like(a) for a in self.alphas]
        if eps:
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, w0, g in zip(self.weights, w, d_w, strict=True):
                        p.copy_(w0 + sign * eps * g)
                g_a = torch.autograd.grad(
                    self.loss(self.model, train_batch), self.alphas, allow_unused=True
                )
                for h, g in zip(hvp, g_a, strict=True):
                    if g is not None:
                        h.add_(sign * g / (2 * eps))
        with torch.no_grad():
            for p, w0 in zip(self.weights, w, strict=True):
                p.copy_(w0)
        total = [
            (torch.zeros_like(a) if d is None else d) - self.xi * h
            for a, d, h in zip(self.alphas, d_alpha, hvp, strict=True)
        ]
        self._set_grads(self.alphas, total)
        return loss.detach()

    @staticmethod
    def _set_grads(params: list[nn.Parameter], grads) -> None:  # noqa: ANN001
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.zeros_like(p) if g is None else g.detach().clone()

    def weight_step(self, batch: Any) -> Tensor:
        self.weight_optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss is {float(loss)} at search step {self.step}: "
                "lower the learning rate"
            )
        loss.backward()
        for a in self.alphas:  # the weights' loss never moves the architecture
            a.grad = None
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.weights, self.max_grad_norm)
        self.weight_optimizer.step()
        return loss.detach()

    def train_step(self, train_batch: Any, valid_batch: Any) -> dict[str, float]:
        """One architecture step on ``valid_batch``, then one weight step on ``train_batch``."""
        self.before_step()
        self.model.train()
        if self.step >= self.warmup_steps:
            self.arch_optimizer.zero_grad(set_to_none=True)
            valid = self.arch_gradients(train_batch, valid_batch)
            if not torch.isfinite(valid):
                raise FloatingPointError(
                    f"the validation loss is {float(valid)} at search step {self.step}"
                )
            self.arch_optimizer.step()
        else:
            with torch.no_grad():
                valid = self.valid_objective(valid_batch)
        train = self.weight_step(train_batch)
        self.step += 1
        stats = {"train_loss": float(train), "valid_loss": float(valid), "step": self.step}
        if self.cost_weight:
            stats["expected_cost"] = float(self.expected_cost().detach())
        return stats

    # ------------------------------------------------------------------ results
    def genotype(self) -> dict[str, str]:
        return genotype(self.model)

    def derive(self) -> nn.Module:
        """The derived network: the supernet's own ``derive()`` when it has one (a search
        space that builds a proper model), else every edge replaced by its chosen operation
        (in place)."""
        own = getattr(self.model, "derive", None)
        return own() if callable(own) else derive_modules(self.model)

    def state_dict(self) -> dict[str, Any]:
        """Optimizers and step (the supernet's own ``state_dict`` holds weights and alphas)."""
        return {
            "name": self.name,
            "step": self.step,
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"a {state.get('name')!r} search state, not {self.name!r}")
        self.step = int(state["step"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])


NAS_ENGINES: Registry[ArchitectureSearch] = Registry("architecture search", ArchitectureSearch)
register_search = NAS_ENGINES.register
