"""Molecule generation on QM9: graph data, resumable GAN training, sampling, compression.

* :func:`load_graphs`: every QM9 molecule the graph encoding holds
  (:mod:`chemprune.molecules.chem.molgraph`; the few charged zwitterions are skipped and counted), split
  into training and held-out molecules by a seed; the encoding is cached beside the QM9 cache.
* :func:`train_gan`: a run folder with ``last.pt`` (everything needed to continue exactly,
  written atomically every ``save_every`` seconds and at the end), then the generator file.
* :func:`sample_smiles`, :func:`evaluate_samples`: canonical SMILES of ``n`` samples (with
  the generator of each on request) and the evaluation protocol's metrics against the file's
  own training molecules (novelty) and held-out ones (FCD), with per-generator coverage.
* :func:`compress_gan`: content-aware (or magnitude) channel pruning to a MAC budget, removed
  for real, then distillation from the uncompressed generator with the same engine.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chemprune.common.atomic import CheckpointError, atomic_save
from chemprune.engines.gan.base import (
    GAN_ENGINES,
    AdversarialTraining,
    one_hot_graphs,
    sample_graphs,
)
from chemprune.engines.gan.checkpoint import (
    generator_checkpoint,
    load_generator,
    load_generator_file,
)
from chemprune.engines.gan.compress import (
    content_scores,
    magnitude_scores,
    prune_generator,
    select_channels,
)
from chemprune.engines.gan.metrics import generation_metrics
from chemprune.engines.gan.models import GraphCritic, GraphGenerator
from chemprune.molecules.chem.molgraph import ATOM_TYPES, BOND_TYPES, MAX_ATOMS, decode, encode_many
from chemprune.pipeline.gan_reward import REWARDS, chemistry_options

__all__ = [
    "GANSettings",
    "GraphData",
    "compress_gan",
    "evaluate_samples",
    "load_graphs",
    "sample_smiles",
    "train_gan",
]

GRAPH_CACHE_VERSION = 1


@dataclass(frozen=True)
class GraphData:
    """Encoded molecules and their split (indices into ``atoms``)."""

    atoms: np.ndarray
    bonds: np.ndarray
    smiles: np.ndarray  # canonical SMILES of each encoded molecule
    train: np.ndarray
    test: np.ndarray
    spec: dict[str, Any] = field(default_factory=dict)

    def train_smiles(self) -> set[str]:
        return set(self.smiles[self.train].tolist())

    def test_smiles(self) -> list[str]:
        return self.smiles[self.test].tolist()


def _encoded_qm9(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    from chemprune.common.atomic import atomic_write
    from chemprune.molecules.data.qm9 import cache_dir, load_dataset

    data, source, _ = load_dataset(data_dir)
    key = hashlib.sha256(f"{source}|{GRAPH_CACHE_VERSION}".encode()).hexdigest()[:12]
    path = cache_dir() / "qm9" / f"graphs_v{GRAPH_CACHE_VERSION}_{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return z["atoms"], z["bonds"], z["smiles"], meta
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt
    atoms, bonds, kept, skipped = encode_many(data.smiles.tolist())
    smiles = np.array([decode(a, b) for a, b in zip(atoms, bonds, strict=True)], dtype=str)
    meta = {"source": source, "molecules": len(data), "encoded": len(kept), "skipped": skipped}
    buf = io.BytesIO()
    np.savez(buf, atoms=atoms, bonds=bonds, smiles=smiles, meta=np.array(json.dumps(meta)))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return atoms, bonds, smiles, meta


def load_graphs(
    data_dir: Path | None = None,
    *,
    molecules: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.1,
) -> GraphData:
    """QM9 as graphs: the first ``molecules`` encodable ones (all by default), a random
    ``test_fraction`` of them held out (seeded)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    atoms, bonds, smiles, meta = _encoded_qm9(data_dir)
    if molecules is not None:
        if molecules < 10:
            raise ValueError(f"molecules must be >= 10, got {molecules}")
        atoms, bonds, smiles = atoms[:molecules], bonds[:molecules], smiles[:molecules]
    perm = np.random.default_rng(seed).permutation(len(atoms))
    n_test = max(1, int(round(test_fraction * len(atoms))))
    spec = {
        "source": meta["source"], "data_dir": None if data_dir is None else str(data_dir),
        "encoded": int(meta["encoded"]), "skipped": meta["skipped"],
        "molecules": int(len(atoms)),
        "split": {"seed": int(seed), "test_fraction": float(test_fraction),
                  "train": int(len(atoms) - n_test), "test": int(n_test)},
        "encoding": {"max_atoms": MAX_ATOMS, "atoms": list(ATOM_TYPES), "bonds": list(BOND_TYPES)},
    }  # fmt: skip
    return GraphData(atoms, bonds, smiles, np.sort(perm[n_test:]), np.sort(perm[:n_test]), spec)


def graphs_of(ckpt: dict[str, Any], data_dir: Path | None = None) -> GraphData:
    """The training and held-out molecules a generator file was made with."""
    d = ckpt.get("data") or {}
    split = d.get("split") or {}
    try:
        graphs = load_graphs(
            data_dir if data_dir is not None else d.get("data_dir") and Path(d["data_dir"]),
            molecules=d.get("molecules"), seed=split["seed"],
            test_fraction=split["test_fraction"],
        )  # fmt: skip
    except KeyError:
        raise CheckpointError("the generator file does not record its data split") from None
    if graphs.spec["molecules"] != d.get("molecules"):
        raise ValueError(
            f"the generator was trained on {d.get('molecules')} molecules of {d.get('source')}; "
            f"this data has {graphs.spec['molecules']}"
        )
    return graphs


@dataclass(frozen=True)
class GANSettings:
    """What defines a GAN run (recorded in ``last.pt``; a resume must match)."""

    engine: str = "mgo_gan"
    generators: int = 4
    classifier_weight: float | None = None
    orthogonal_weight: float | None = None
    z_dim: int = 32
    hidden: tuple[int, ...] = (128, 256, 512)
    lr: float = 1e-3
    n_critic: int = 5
    gp_weight: float = 10.0
    batch_size: int = 32
    seed: int = 0
    minibatch_std: bool = False
    batch_features: int = 0  # MolGAN's batch-feature vector in the critic (0: off)
    pack: int = 1  # PacGAN: the critic judges this many graphs at once
    mode_seeking: float = 0.0  # MSGAN's weight
    same_noise: bool = False  # MGAN's code: the K generators share each noise vector
    valence_weight: float = 0.0  # the differentiable valence/connectivity penalties
    rl_weight: float = 0.0  # MolGAN's reward network (lambda; 0: off)
    rl_warmup: int = 0  # GAN-only critic steps before the reward term
    reward: str = "validity"  # or validity_qed

    def __post_init__(self) -> None:
        if self.batch_features < 0:
            raise ValueError(f"batch_features must be >= 0, got {self.batch_features}")
        if self.pack < 1:
            raise ValueError(f"pack must be >= 1, got {self.pack}")
        if self.batch_size % self.pack:
            raise ValueError(
                f"the batch size {self.batch_size} is not divisible by the pack {self.pack}"
            )
        if not (self.mode_seeking >= 0 and math.isfinite(self.mode_seeking)):
            raise ValueError(f"mode_seeking must be a finite number >= 0, got {self.mode_seeking}")
        if not (self.valence_weight >= 0 and math.isfinite(self.valence_weight)):
            raise ValueError(
                f"valence_weight must be a finite number >= 0, got {self.valence_weight}"
            )
        if not 0 <= self.rl_weight <= 1:
            raise ValueError(f"rl_weight must be in [0, 1], got {self.rl_weight}")
        if self.rl_warmup < 0:
            raise ValueError(f"rl_warmup must be >= 0, got {self.rl_warmup}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")

    def engine_options(self) -> dict[str, Any]:
        return {
            "lr": self.lr, "n_critic": self.n_critic, "gp_weight": self.gp_weight,
            "classifier_weight": self.classifier_weight,
            "orthogonal_weight": self.orthogonal_weight, "mode_seeking": self.mode_seeking,
            "same_noise": self.same_noise, "valence_weight": self.valence_weight,
            "rl_weight": self.rl_weight, "rl_warmup": self.rl_warmup, "seed": self.seed,
        }  # fmt: skip

    def build(self) -> tuple[GraphGenerator, GraphCritic]:
        cls = GAN_ENGINES.get(self.engine)  # an unknown engine fails before anything is built
        torch.manual_seed(self.seed)
        gen = GraphGenerator(num_generators=self.generators, z_dim=self.z_dim, hidden=self.hidden)
        cw = (
            cls.default_classifier_weight
            if self.classifier_weight is None
            else self.classifier_weight
        )
        critic = GraphCritic(
            num_generators=self.generators if cw > 0 else 0, minibatch_std=self.minibatch_std,
            batch_features=self.batch_features, pack=self.pack,
        )  # fmt: skip
        return gen, critic


def _quiet(_: str) -> None:
    pass


def _epoch_order(train: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The shuffled training indices of ``epoch`` (a function of seed and epoch), computed once
    per epoch rather than at every step; the cache holds the array it was computed from."""
    global _ORDER
    held, key, order = _ORDER
    if held is not train or key != (seed, epoch):
        order = np.random.default_rng([seed, epoch]).permutation(train)
        _ORDER = (train, (seed, epoch), order)
    return order


_ORDER: tuple = (None, None, None)


def _batch(graphs: GraphData, step: int, batch_size: int, seed: int):
    per_epoch = len(graphs.train) // batch_size
    if per_epoch < 1:
        raise ValueError(
            f"{len(graphs.train)} training molecules are fewer than one batch of {batch_size}"
        )
    epoch, pos = divmod(step, per_epoch)
    order = _epoch_order(graphs.train, seed, epoch)
    idx = order[pos * batch_size : (pos + 1) * batch_size]
    return one_hot_graphs(
        torch.from_numpy(graphs.atoms[idx]), torch.from_numpy(graphs.bonds[idx]),
        len(ATOM_TYPES), len(BOND_TYPES),
    )  # fmt: skip


def fit(
    engine: AdversarialTraining,
    graphs: GraphData,
    run_dir: Path,
    *,
    record: dict[str, Any],
    batch_size: int,
    seed: int,
    steps: int | None,
    minutes: float | None,
    save_every: float = 60.0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``engine.train_step`` on shuffled training batches until ``steps`` (critic steps in
    all, counting those before a resume) or ``minutes`` (this call); ``last.pt`` in
    ``run_dir`` is written every ``save_every`` seconds and at the end."""
    from chemprune.common.progress import progress_bar

    if steps is None and minutes is None:
        raise ValueError("give steps or minutes (the training budget)")
    log = log or _quiet
    run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "last.pt"

    def save() -> None:
        extra = {"training": {"engine_state": engine.state_dict(), **record}}
        ckpt = generator_checkpoint(
            engine.generator, engine.critic, engine=engine.name,
            engine_options=record.get("engine_options"), data=graphs.spec, extra=extra,
        )  # fmt: skip
        atomic_save(ckpt, last)

    t0 = last_save = time.perf_counter()
    bar = progress_bar(total=steps, initial=engine.step, desc="gan") if progress and steps else None
    stats: dict[str, float] = {}
    history = []
    try:
        while (steps is None or engine.step < steps) and (
            minutes is None or time.perf_counter() - t0 < 60 * minutes
        ):
            stats = engine.train_step(_batch(graphs, engine.step, batch_size, seed))
            if "g_loss" in stats and engine.step % (engine.n_critic * 100) == 0:
                history.append({k: round(v, 5) for k, v in stats.items()})
                log(
                    f"step {engine.step}: W {stats['wasserstein']:.3f} gp {stats['gp']:.3f} "
                    f"g {stats['g_loss']:.3f}"
                )
            if bar is not None:
                bar.update(1)
            if time.perf_counter() - last_save > save_every:
                save()
                last_save = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()
        save()  # also on an interrupt: the run resumes from here
    return {"steps": engine.step, "seconds": time.perf_counter() - t0, "last": str(last),
            "final": stats, "history": history}  # fmt: skip


def train_gan(
    graphs: GraphData,
    run_dir: Path,
    out: Path,
    *,
    settings: GANSettings,
    steps: int | None = None,
    minutes: float | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a GAN; writes ``run_dir/last.pt`` and ``out``."""
    last = Path(run_dir) / "last.pt"
    gen, critic = settings.build()
    engine_cls = GAN_ENGINES.get(settings.engine)
    options = settings.engine_options()
    engine = engine_cls(generator=gen, critic=critic, **chemistry_options(options, settings.reward))
    record = {"settings": _plain(asdict(settings)), "engine_options": options}
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"--resume: {last} does not exist (nothing to continue)")
        old = load_generator_file(last)
        saved = (old.get("training") or {}).get("settings")
        if isinstance(saved, dict):  # a run from before an option existed ran with its default
            saved = {**_plain(asdict(GANSettings())), **saved}
        if saved != record["settings"]:
            raise ValueError(
                f"{last} was started with other settings ({saved}); resume with the same ones"
            )
        gen.load_state_dict(old["state_dict"])
        critic.load_state_dict(old["critic_state_dict"])
        engine.load_state_dict(old["training"]["engine_state"])
    elif last.exists():
        raise FileExistsError(
            f"{last} exists: pass --resume to continue that run, or choose another --out"
        )
    summary = fit(
        engine, graphs, Path(run_dir), record=record, batch_size=settings.batch_size,
        seed=settings.seed, steps=steps, minutes=minutes, progress=progress, log=log,
    )  # fmt: skip
    ckpt = generator_checkpoint(
        gen, critic, engine=engine.name, engine_options=options, data=graphs.spec,
        metrics={"steps": engine.step}, extra={"settings": record["settings"]},
    )  # fmt: skip
    atomic_save(ckpt, out)
    return {**summary, "out": str(out)}


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def sample_smiles(
    gen: GraphGenerator, n: int, *, seed: int = 0, with_generator: bool = False
) -> list[str | None] | list[tuple[str | None, int]]:
    """Canonical SMILES of ``n`` samples (``None`` for an invalid graph), reproducible from
    ``seed``. Sample ``i`` comes from generator ``i mod K`` (:func:`sample_graphs`), so each of
    the K generators makes ``n // K`` or ``n // K + 1`` of them (the first ``n mod K`` one
    more). ``with_generator``: ``(smiles, k)`` pairs instead, ``k`` the sample's generator."""
    atoms, bonds, which = sample_graphs(gen, n, seed=seed)
    smiles = [decode(a, b) for a, b in zip(atoms.numpy(), bonds.numpy(), strict=True)]
    if with_generator:
        return list(zip(smiles, (int(k) for k in which.tolist()), strict=True))
    return smiles


def evaluate_samples(
    samples: list[str | None],
    graphs: GraphData,
    *,
    fcd_reference: int | None = 10_000,
    generators: list[int] | None = None,
    num_generators: int | None = None,
) -> dict[str, Any]:
    """The protocol's metrics of ``samples`` (:mod:`chemprune.engines.gan.metrics`): validity
    over all of them, uniqueness over the valid ones, novelty of the distinct valid ones
    against the training molecules, internal diversity, FCD against up to ``fcd_reference``
    held-out ones (``None``: no FCD) and, given each sample's generator (``generators``, and K
    as ``num_generators``), the per-generator coverage under ``"coverage"``."""
    reference = None
    if fcd_reference:
        test = graphs.test_smiles()
        rng = np.random.default_rng(0)
        if len(test) > fcd_reference:
            test = [test[i] for i in np.sort(rng.choice(len(test), fcd_reference, replace=False))]
        reference = test
    return generation_metrics(
        samples, graphs.train_smiles(), reference, generators=generators,
        num_generators=num_generators,
    )  # fmt: skip


def compress_gan(
    model: Path,
    out: Path,
    *,
    target_macs: float,
    method: str = "content",
    steps: int | None = None,
    minutes: float | None = None,
    distill_weight: float = 10.0,
    score_batches: int = 16,
    seed: int = 0,
    data_dir: Path | None = None,
    run_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Prune ``model``'s generator channels to ``target_macs`` of its MACs (``content`` or
    ``magnitude`` scores), remove them, fine-tune by distillation from the original with the
    engine it was trained with, and write ``out``."""
    if method not in ("content", "magnitude"):
        raise ValueError(f"method must be 'content' or 'magnitude', got {method!r}")
    gen, critic, ckpt = load_generator(model)
    graphs = graphs_of(ckpt, data_dir)
    teacher = copy.deepcopy(gen)
    before = gen.macs()
    if method == "content":
        scores = content_scores(gen, critic, batches=score_batches, seed=seed)
    else:
        scores = magnitude_scores(gen)
    keep = select_channels(gen, scores, target_macs, global_=method == "content")
    report = prune_generator(gen, keep)
    gen.train()
    options = dict(ckpt.get("engine_options") or {})
    options["seed"] = seed
    settings = ckpt.get("settings") or {}
    engine = GAN_ENGINES.get(ckpt["engine"])(
        generator=gen, critic=critic, teacher=teacher, distill_weight=distill_weight,
        **chemistry_options(options, settings.get("reward", "validity")),
    )  # fmt: skip
    summary: dict[str, Any] = {"steps": 0}
    if steps or minutes:
        run_dir = run_dir or out.with_name(out.name + ".run")
        record = {"compress": {"method": method, "target_macs": target_macs}}
        summary = fit(
            engine, graphs, run_dir, record=record, batch_size=int(settings.get("batch_size", 32)),
            seed=seed, steps=steps, minutes=minutes, progress=progress, log=log,
        )  # fmt: skip
    result = {
        "method": method, "target_macs": target_macs, "macs_before": before,
        "macs_after": gen.macs(), "macs_fraction": gen.macs() / before,
        "channels": {k: list(v) for k, v in report.items()}, "finetune_steps": summary["steps"],
    }  # fmt: skip
    new = generator_checkpoint(
        gen, critic, engine=ckpt["engine"], engine_options=options, data=graphs.spec,
        metrics={"steps": summary["steps"]}, extra={
            "settings": settings, "compressed_from": {"model": str(model), **result},
        },
    )  # fmt: skip
    atomic_save(new, out)
    return {**result, "out": str(out)}
