"""Evolved pruning functions: genetic programming over class-discriminant expressions.

After "Evolving transferable neural pruning functions" (GECCO 2022): an expression maps the
one-vs-rest statistics of a channel's activations (:func:`chemprune.engines.prune.discriminant.
one_vs_rest`: ``mu_in``, ``mu_out``, ``var_in``, ``var_out``, ``n_in``, ``n_out``, each
``[classes, channels]``) and its producing weights' norms (``w_l1``, ``w_l2``, ``[1, channels]``)
to a per-class score; summed over classes it scores the channel, as
:class:`~chemprune.engines.prune.discriminant.CDCPruner` uses any discriminant function. The search
(``deap.gp``) starts from the seed functions written as expressions (:data:`SEEDS`: SNR, FDR,
symmetric divergence, t-statistic, L1 and L2 norms) and random trees; the fitness is the
caller's (accuracy after pruning to a fixed FLOP target and a short fine-tune, on a small proxy
task). Every operator is protected (division by near-zero, square root and logarithm of
negatives, overflow), and scores are made finite, so no expression yields NaN.

:func:`compile_expression` turns a saved expression (a string) back into a scoring function;
:func:`register_expression` adds it to :data:`~chemprune.engines.prune.discriminant.DISCRIMINANTS`
under a name, an ordinary scoring rule from then on.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from chemprune.engines.prune.discriminant import DISCRIMINANTS

__all__ = [
    "SEEDS",
    "TERMINALS",
    "EvolutionResult",
    "compile_expression",
    "evolve",
    "primitive_set",
    "register_expression",
    "resolve_function",
]

TERMINALS = ("mu_in", "mu_out", "var_in", "var_out", "n_in", "n_out", "w_l1", "w_l2")
BIG = 1e12

#: the hand-designed rules as expressions (the same values as the functions in
#: :mod:`chemprune.engines.prune.discriminant`, up to the protection constants)
SEEDS: dict[str, str] = {
    "snr": "pdiv(pabs(sub(mu_in, mu_out)), add(psqrt(var_in), psqrt(var_out)))",
    "fdr": "pdiv(square(sub(mu_in, mu_out)), add(var_in, var_out))",
    "symmetric_divergence": (
        "add(sub(mul(0.5, add(pdiv(var_in, var_out), pdiv(var_out, var_in))), 1.0), "
        "mul(mul(0.5, square(sub(mu_in, mu_out))), add(pdiv(1.0, var_in), pdiv(1.0, var_out))))"
    ),
    "t_statistic": (
        "pdiv(pabs(sub(mu_in, mu_out)), psqrt(add(pdiv(var_in, n_in), pdiv(var_out, n_out))))"
    ),
    "l1": "w_l1",
    "l2": "w_l2",
}


def _finite(x: Tensor) -> Tensor:
    return torch.nan_to_num(x, nan=0.0, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def _t(x) -> Tensor:  # noqa: ANN001 - constants arrive as floats
    return x if isinstance(x, Tensor) else torch.tensor(float(x), dtype=torch.float64)


def pdiv(a, b) -> Tensor:  # noqa: ANN001
    a, b = _t(a), _t(b)
    safe = torch.where(b.abs() < 1e-8, torch.full_like(b, 1e-8) * torch.sign(b + 1e-30), b)
    return _finite(a / safe)


def psqrt(a) -> Tensor:  # noqa: ANN001
    return torch.sqrt(_t(a).abs())


def plog(a) -> Tensor:  # noqa: ANN001
    return torch.log1p(_t(a).abs())


def square(a) -> Tensor:  # noqa: ANN001
    return _finite(_t(a) ** 2)


def pabs(a) -> Tensor:  # noqa: ANN001
    return _t(a).abs()


def add(a, b) -> Tensor:  # noqa: ANN001
    return _finite(_t(a) + _t(b))


def sub(a, b) -> Tensor:  # noqa: ANN001
    return _finite(_t(a) - _t(b))


def mul(a, b) -> Tensor:  # noqa: ANN001
    return _finite(_t(a) * _t(b))


def pmax(a, b) -> Tensor:  # noqa: ANN001
    return torch.maximum(_t(a), _t(b))


def pmin(a, b) -> Tensor:  # noqa: ANN001
    return torch.minimum(_t(a), _t(b))


def neg(a) -> Tensor:  # noqa: ANN001
    return -_t(a)


_OPS: dict[str, tuple[Callable, int]] = {
    "add": (add, 2), "sub": (sub, 2), "mul": (mul, 2), "pdiv": (pdiv, 2), "pmax": (pmax, 2),
    "pmin": (pmin, 2), "psqrt": (psqrt, 1), "plog": (plog, 1), "square": (square, 1),
    "pabs": (pabs, 1), "neg": (neg, 1),
}  # fmt: skip


def _constant() -> float:
    return random.choice([0.5, 1.0, 2.0])


def primitive_set():
    """The ``deap.gp`` primitive set over :data:`TERMINALS` (constants 0.5, 1 and 2)."""
    from deap import gp

    ps = gp.PrimitiveSet("SCORE", len(TERMINALS))
    for name, (fn, arity) in _OPS.items():
        ps.addPrimitive(fn, arity, name=name)
    for c in (0.5, 1.0, 2.0):
        ps.addTerminal(c, name=repr(c))
    ps.renameArguments(**{f"ARG{i}": t for i, t in enumerate(TERMINALS)})
    return ps


def compile_expression(text: str) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """A discriminant function (one-vs-rest moments, plus optional ``w_l1``/``w_l2`` -> per-
    class scores) from an expression string; raises ``ValueError`` for a malformed one."""
    from deap import gp

    ps = primitive_set()
    try:
        tree = gp.PrimitiveTree.from_string(text, ps)
        if len(tree) != 1 + sum(node.arity for node in tree) or text.count("(") != text.count(")"):
            # (deap's parser accepts "add(mu_in" and "mu_in)")
            raise SyntaxError("operators and operands do not match")
        fn = gp.compile(tree, ps)
    except Exception as err:  # noqa: BLE001 - deap raises TypeError/KeyError/SyntaxError
        raise ValueError(f"not a pruning-function expression: {text!r} ({err})") from None

    def score(m: Mapping[str, Tensor]) -> Tensor:
        ref = m["mu_in"]
        args = [m.get(t, torch.zeros(1, ref.shape[1], dtype=ref.dtype)) for t in TERMINALS]
        args = [a.to(torch.float64) for a in args]
        out = _finite(_t(fn(*args)))
        return out.expand_as(ref) if out.dim() < 2 or out.shape != ref.shape else out

    score.expression = text  # type: ignore[attr-defined]
    return score


def resolve_function(spec: str) -> str | Callable[[Mapping[str, Tensor]], Tensor]:
    """A discriminant from what a user names: a name in
    :data:`~chemprune.engines.prune.discriminant.DISCRIMINANTS`, a JSON file whose ``best`` is an
    expression (what an evolution run writes), or an expression; ``ValueError`` otherwise."""
    import json
    from pathlib import Path

    if spec in DISCRIMINANTS:
        return spec
    if spec.endswith(".json"):
        path = Path(spec)
        try:
            text = json.loads(path.read_text())["best"]
        except FileNotFoundError:
            raise ValueError(f"{spec}: no such file") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{spec}: not an evolution result with a 'best' expression "
                             f"({type(err).__name__})") from None  # fmt: skip
        if not isinstance(text, str):
            raise ValueError(f"{spec}: 'best' is not an expression string")
        return compile_expression(text)
    return compile_expression(spec)


def register_expression(name: str, text: str) -> None:
    """Make an (evolved) expression a named discriminant (``CDCPruner(function=name)``)."""
    if name in DISCRIMINANTS:
        raise ValueError(f"discriminant {name!r} already exists")
    DISCRIMINANTS[name] = compile_expression(text)


@dataclass
class EvolutionResult:
    best: str
    fitness: float
    history: list[dict] = field(default_factory=list)  # per generation: best, mean, expression
    evaluated: dict[str, float] = field(default_factory=dict)  # every expression scored


def evolve(
    fitness: Callable[[Callable[[Mapping[str, Tensor]], Tensor]], float],
    *,
    population: int = 20,
    generations: int = 5,
    seeds: Sequence[str] = tuple(SEEDS.values()),
    crossover: float = 0.6,
    mutation: float = 0.3,
    max_depth: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> EvolutionResult:
    """Genetic programming over scoring expressions, maximising ``fitness(score_fn)``.

    The first population holds the ``seeds`` and random trees (ramped half-and-half, depth
    1-3); then tournament selection (3), one-point crossover, uniform subtree mutation, trees
    deeper than ``max_depth`` refused, the best individual always kept. An expression's fitness
    is computed once (cached by its text); a fitness that raises or is not finite counts as
    minus infinity.
    """
    from deap import base, creator, gp, tools

    if population < 2 or generations < 0:
        raise ValueError("population must be >= 2 and generations >= 0")
    rng_state = random.getstate()
    random.seed(seed)
    ps = primitive_set()
    if not hasattr(creator, "PruneFitness"):
        creator.create("PruneFitness", base.Fitness, weights=(1.0,))
        creator.create("PruneTree", gp.PrimitiveTree, fitness=creator.PruneFitness)
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=ps, min_=1, max_=3)
    tb.register("individual", tools.initIterate, creator.PruneTree, tb.expr)
    tb.register("select", tools.selTournament, tournsize=3)
    tb.register("mate", gp.cxOnePoint)
    tb.register("expr_mut", gp.genFull, min_=0, max_=2)
    tb.register("mutate", gp.mutUniform, expr=tb.expr_mut, pset=ps)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=max_depth)
    tb.decorate("mate", limit)
    tb.decorate("mutate", limit)
    cache: dict[str, float] = {}

    def score(ind) -> float:  # noqa: ANN001
        text = str(ind)
        if text not in cache:
            try:
                v = float(fitness(compile_expression(text)))
            except Exception:  # noqa: BLE001 - a broken candidate just loses
                v = -math.inf
            cache[text] = v if math.isfinite(v) else -math.inf
            if log:
                log(f"fitness {cache[text]:.4f}  {text}")
        return cache[text]

    pop = [creator.PruneTree(gp.PrimitiveTree.from_string(s, ps)) for s in seeds][:population]
    pop += [tb.individual() for _ in range(population - len(pop))]
    for ind in pop:
        ind.fitness.values = (score(ind),)
    history = []
    try:
        for gen in range(generations + 1):
            vals = [i.fitness.values[0] for i in pop]
            best = max(pop, key=lambda i: i.fitness.values[0])
            finite = [v for v in vals if math.isfinite(v)]
            history.append({"generation": gen, "best": best.fitness.values[0],
                            "mean": sum(finite) / len(finite) if finite else -math.inf,
                            "expression": str(best)})  # fmt: skip
            if gen == generations:
                break
            elite = tb.clone(best)
            offspring = [tb.clone(i) for i in tb.select(pop, len(pop) - 1)]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if random.random() < crossover:
                    tb.mate(a, b)
                    del a.fitness.values, b.fitness.values
            for i in offspring:
                if random.random() < mutation:
                    tb.mutate(i)
                    del i.fitness.values
            for i in offspring:
                if not i.fitness.valid:
                    i.fitness.values = (score(i),)
            pop = [elite, *offspring]
    finally:
        random.setstate(rng_state)
    top = max(pop, key=lambda i: i.fitness.values[0])
    return EvolutionResult(str(top), top.fitness.values[0], history, dict(cache))
