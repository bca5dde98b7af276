"""Class-discriminative channel pruning (CDC): keep the channels whose activations tell the
classes apart.

Statistics (:class:`ClassStats`): for every channel of every group, the count, mean and variance
of its activation (averaged over positions) per class, accumulated over batches with
:meth:`CDCPruner.observe`. A *discriminant function* turns them into one score per channel: for
each class ``k`` it compares the class (``in``) with all other classes (``out``) and the scores
are summed over classes. The seed functions (textbook forms, on 1-D Gaussians):

* ``snr``: ``|mu_in - mu_out| / (sigma_in + sigma_out)`` (signal-to-noise ratio);
* ``fdr``: ``(mu_in - mu_out)^2 / (var_in + var_out)`` (Fisher's discriminant ratio);
* ``symmetric_divergence``: the symmetric Kullback-Leibler divergence of the two Gaussians,
  ``(var_in/var_out + var_out/var_in)/2 - 1 + (mu_in - mu_out)^2 (1/var_in + 1/var_out)/2``
  (CDC's generalised symmetric divergence);
* ``t_statistic``: Welch's ``|mu_in - mu_out| / sqrt(var_in/n_in + var_out/n_out)``.

Hierarchical labels (CDC): :func:`hierarchical_labels` clusters the classes by how often a
classifier confuses them (its confusion matrix), and ``coarse_groups`` of the first groups are
scored on those coarse labels, the rest on the fine ones. :func:`discriminant_subspace` gives the
linear discriminant directions of a layer's features, onto which
:class:`chemprune.engines.distill.features.DiscriminantFeatureLoss` projects teacher and student features.

References:
    Y. Liu, D. Wentzlaff, S. Y. Kung, "Rethinking class-discrimination based CNN channel
    pruning", arXiv 2004.14492 (2020); CDC: class-discriminative compression (ICPR 2022).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.prune.base import Pruner, Schedule, register_pruner
from chemprune.engines.prune.groups import PruningGroup

__all__ = [
    "DISCRIMINANTS",
    "CDCPruner",
    "ClassStats",
    "discriminant_subspace",
    "fdr",
    "hierarchical_labels",
    "one_vs_rest",
    "snr",
    "symmetric_divergence",
    "t_statistic",
]

EPS = 1e-8
FeatureFn = Callable[[nn.Module, Tensor], dict[str, Tensor]]


class ClassStats:
    """Running per-class count, sum and sum of squares of ``channels`` features."""

    def __init__(self, num_classes: int, channels: int) -> None:
        self.n = torch.zeros(num_classes, dtype=torch.float64)
        self.s = torch.zeros(num_classes, channels, dtype=torch.float64)
        self.ss = torch.zeros(num_classes, channels, dtype=torch.float64)

    def add(self, feats: Tensor, labels: Tensor) -> None:
        """``feats [B, C]``, ``labels [B]`` (0-based)."""
        f = feats.detach().to(torch.float64)
        k = self.n.shape[0]
        onehot = torch.nn.functional.one_hot(labels.long(), k).to(torch.float64)  # [B, K]
        self.n += onehot.sum(0)
        self.s += onehot.T @ f
        self.ss += onehot.T @ (f * f)

    def moments(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(n [K, 1], mean [K, C], var [K, C])`` per class (unbiased variance)."""
        n = self.n.unsqueeze(1)
        mean = self.s / n.clamp(min=1)
        var = (self.ss - n * mean**2) / (n - 1).clamp(min=1)
        return n, mean, var.clamp(min=0)


def one_vs_rest(stats: ClassStats) -> dict[str, Tensor]:
    """Per class ``k``: the moments of class ``k`` (``*_in``) and of every other class pooled
    (``*_out``), each ``[K, C]`` (counts ``[K, 1]``)."""
    n, _, _ = stats.moments()
    tot_n, tot_s, tot_ss = stats.n.sum(), stats.s.sum(0), stats.ss.sum(0)
    n_out = (tot_n - stats.n).unsqueeze(1)
    s_out, ss_out = tot_s - stats.s, tot_ss - stats.ss
    mu_in = stats.s / n.clamp(min=1)
    var_in = ((stats.ss - n * mu_in**2) / (n - 1).clamp(min=1)).clamp(min=0)
    mu_out = s_out / n_out.clamp(min=1)
    var_out = ((ss_out - n_out * mu_out**2) / (n_out - 1).clamp(min=1)).clamp(min=0)
    return {"n_in": n, "mu_in": mu_in, "var_in": var_in,
            "n_out": n_out, "mu_out": mu_out, "var_out": var_out}  # fmt: skip


def snr(m: Mapping[str, Tensor]) -> Tensor:
    return (m["mu_in"] - m["mu_out"]).abs() / (m["var_in"].sqrt() + m["var_out"].sqrt() + EPS)


def fdr(m: Mapping[str, Tensor]) -> Tensor:
    return (m["mu_in"] - m["mu_out"]) ** 2 / (m["var_in"] + m["var_out"] + EPS)


def symmetric_divergence(m: Mapping[str, Tensor]) -> Tensor:
    vi, vo = m["var_in"] + EPS, m["var_out"] + EPS
    d2 = (m["mu_in"] - m["mu_out"]) ** 2
    return 0.5 * (vi / vo + vo / vi) - 1 + 0.5 * d2 * (1 / vi + 1 / vo)


def t_statistic(m: Mapping[str, Tensor]) -> Tensor:
    se = (m["var_in"] / m["n_in"].clamp(min=1) + m["var_out"] / m["n_out"].clamp(min=1)).sqrt()
    return (m["mu_in"] - m["mu_out"]).abs() / (se + EPS)


#: the seed discriminant functions: one-vs-rest moments -> ``[K, C]`` per-class scores
DISCRIMINANTS: dict[str, Callable[[Mapping[str, Tensor]], Tensor]] = {
    "snr": snr, "fdr": fdr, "symmetric_divergence": symmetric_divergence,
    "t_statistic": t_statistic,
}  # fmt: skip


def hierarchical_labels(confusion: Sequence[Sequence[float]], num_coarse: int) -> list[int]:
    """Coarse label of every class: average-linkage clustering of the classes into
    ``num_coarse`` groups, the similarity of two classes being how often a classifier mistakes
    one for the other (row-normalised confusion, symmetrised). A partition of the classes."""
    c = torch.as_tensor(confusion, dtype=torch.float64)
    k = c.shape[0]
    if c.shape != (k, k) or k < 1:
        raise ValueError(f"confusion must be a square matrix, got {tuple(c.shape)}")
    if not 1 <= num_coarse <= k:
        raise ValueError(f"num_coarse must be in [1, {k}], got {num_coarse}")
    p = c / c.sum(1, keepdim=True).clamp(min=1)
    sim = 0.5 * (p + p.T)
    clusters: list[list[int]] = [[i] for i in range(k)]
    while len(clusters) > num_coarse:
        best, pair = -1.0, (0, 1)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = float(sim[clusters[a]][:, clusters[b]].mean())
                if s > best:
                    best, pair = s, (a, b)
        a, b = pair
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]
    labels = [0] * k
    for i, members in enumerate(sorted(clusters)):
        for m in members:
            labels[m] = i
    return labels


def discriminant_subspace(
    features: Tensor, labels: Tensor, dim: int, ridge: float = 1e-3
) -> Tensor:
    """``[C, dim]`` orthonormal linear-discriminant directions of ``features [N, C]``: the top
    generalised eigenvectors of the between- and (ridge-regularised) within-class scatter."""
    f = features.detach().to(torch.float64)
    classes = labels.unique()
    mean = f.mean(0)
    sw = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64)
    sb = torch.zeros_like(sw)
    for k in classes:
        fk = f[labels == k]
        mk = fk.mean(0)
        sw += (fk - mk).T @ (fk - mk)
        sb += len(fk) * torch.outer(mk - mean, mk - mean)
    sw += ridge * torch.trace(sw).clamp(min=EPS) / f.shape[1] * torch.eye(f.shape[1], dtype=f.dtype)
    evals, evecs = torch.linalg.eig(torch.linalg.solve(sw, sb))
    order = torch.argsort(evals.real, descending=True)[: max(1, min(dim, f.shape[1]))]
    q, _ = torch.linalg.qr(evecs.real[:, order])
    return q.to(features.dtype)


def _pooled(t: Tensor) -> Tensor:
    """``[B, C, ...] -> [B, C]``: the mean over positions."""
    return t.flatten(2).mean(2) if t.dim() > 2 else t


@register_pruner("cdc")
class CDCPruner(Pruner):
    """Class-discriminative channel pruning (see the module docstring).

    Args:
        groups: channel groups (``weight`` groups are refused: scores are per channel).
        sparsity, scope, schedule: as for :class:`~chemprune.engines.prune.base.Pruner` (default scope
            ``layer``: discriminant scores of different layers are not on one scale).
        function: a name in :data:`DISCRIMINANTS`, or a callable of the one-vs-rest moments.
        num_classes: the number of (fine) classes.
        coarse: the coarse label of every fine class (:func:`hierarchical_labels`), used for
            the first ``coarse_groups`` groups.
        features: ``features(model, inputs) -> {group name: [B, C, ...]}``; default: forward
            hooks on each group's producing module (its first mask slot), averaged over
            positions.
    """

    structured_only = True
    needs_data = True

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "layer",
        schedule: Schedule | None = None,
        function: str | Callable[[Mapping[str, Tensor]], Tensor] = "symmetric_divergence",
        num_classes: int = 10,
        coarse: Sequence[int] | None = None,
        coarse_groups: int = 0,
        features: FeatureFn | None = None,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        weight = [g.name for g in self.groups if not g.structured]
        if weight:
            raise ValueError(
                f"cdc scores channels; {weight[0]!r} is a weight group (use channel groups)"
            )
        if isinstance(function, str):
            if function not in DISCRIMINANTS:
                raise ValueError(
                    f"unknown discriminant {function!r}; choose one of {sorted(DISCRIMINANTS)}"
                )
            function = DISCRIMINANTS[function]
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if coarse is not None and len(coarse) != num_classes:
            raise ValueError(f"coarse gives {len(coarse)} labels for {num_classes} classes")
        if not 0 <= coarse_groups <= len(self.groups) or (coarse_groups and coarse is None):
            raise ValueError("coarse_groups needs coarse labels and at most one per group")
        self.function = function
        self.num_classes = int(num_classes)
        self.coarse = None if coarse is None else torch.as_tensor(list(coarse), dtype=torch.long)
        self.coarse_groups = int(coarse_groups)
        self.features = features
        self.stats: dict[str, ClassStats] = {}

    def _labels_for(self, i: int, labels: Tensor) -> tuple[Tensor, int]:
        if i < self.coarse_groups:
            return self.coarse[labels], int(self.coarse.max()) + 1
        return labels, self.num_classes

    @torch.no_grad()
    def observe(self, model: nn.Module, inputs: Tensor, labels: Tensor) -> None:
        """Add one batch's activations to the per-class statistics."""
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}); got {int(labels.min())}.."
                f"{int(labels.max())}"
            )
        was = model.training
        model.eval()
        try:
            feats = self._collect(model, inputs)
        finally:
            model.train(was)
        for i, g in enumerate(self.groups):
            f = _pooled(feats[g.name])
            lab, k = self._labels_for(i, labels)
            if g.name not in self.stats:
                self.stats[g.name] = ClassStats(k, f.shape[1])
            self.stats[g.name].add(f, lab)

    def _collect(self, model: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
        if self.features is not None:
            return self.features(model, inputs)
        out: dict[str, Tensor] = {}
        handles = []
        for g in self.groups:
            module = model.get_submodule(g.mask_slots[0].module)

            def hook(_m, _i, o, name=g.name):
                out[name] = o.detach()

            handles.append(module.register_forward_hook(hook))
        try:
            model(inputs)
        finally:
            for h in handles:
                h.remove()
        return out

    def reset(self) -> None:
        self.stats = {}

    def score(self, model: nn.Module) -> dict[str, Tensor]:
        missing = [g.name for g in self.groups if g.name not in self.stats]
        if missing:
            raise ValueError(
                f"cdc needs class statistics: call observe(model, inputs, labels) on labelled "
                f"batches first (none for {missing[0]!r})"
            )
        from chemprune.engines.prune.magnitude import magnitude_scores

        scores = {}
        for g in self.groups:
            moments = one_vs_rest(self.stats[g.name])
            for p in (1, 2):  # the producing weights' norms, for expressions that use them
                w = magnitude_scores(model, [g], norm=p)[g.name].detach().cpu().to(torch.float64)
                moments[f"w_l{p}"] = w.unsqueeze(0)
            per_class = self.function(moments)
            present = self.stats[g.name].n > 0  # classes absent from the data do not vote
            s = torch.nan_to_num(per_class[present].sum(0), nan=0.0, posinf=0.0, neginf=0.0)
            scores[g.name] = s.to(torch.float32)
        return scores
