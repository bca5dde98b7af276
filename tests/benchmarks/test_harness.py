"""benchmarks/harness.py: resumable rows (and the layout existing work folders have), the
environment record, the result JSON and the figure helper."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from benchmarks.harness import (
    RowStore,
    environment,
    error_text,
    finish,
    header,
    pyplot,
    save_figure,
    write_results,
)


def test_saved_row_is_done_and_loads_back_equal(tmp_path):
    store = RowStore(tmp_path / "rows")
    row = {"method": "attention", "sparsity": 0.25, "report": {"val_mae": 0.5}, "path": tmp_path}
    assert not store.done("attention_0.25")
    store.save("attention_0.25", row, model_checkpoint={"w": torch.ones(3)})
    assert store.done("attention_0.25")
    assert store.load("attention_0.25") == row | {"path": str(tmp_path)}  # non-JSON: str
    assert torch.equal(torch.load(store.model_path("attention_0.25"))["w"], torch.ones(3))
    # the names the scripts always used: "<key>.json" and "<key>.pt", "0.25" no suffix
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == [
        "attention_0.25.json", "attention_0.25.pt",
    ]  # fmt: skip
    assert list(store.resume(["attention_0.25"])) == [
        ("attention_0.25", store.load("attention_0.25"))
    ]


def test_a_half_written_row_is_not_done(tmp_path):
    """An interrupted atomic write leaves only its hidden temporary file (chemprune.molecules.checkpoint
    names it ``.<name>.<random>.tmp``); a model saved before the JSON does not count either."""
    store = RowStore(tmp_path)
    (tmp_path / ".magnitude_0.5.json.k3j2x9.tmp").write_text('{"method": "magn')
    store.save_model("magnitude_0.5", {"w": torch.zeros(1)})
    assert not store.done("magnitude_0.5")
    assert list(store.resume(["magnitude_0.5"])) == [("magnitude_0.5", None)]


def test_only_done_skips_the_rows_not_saved(tmp_path):
    said: list[str] = []
    RowStore(tmp_path).save("a", {"x": 1})
    store = RowStore(tmp_path, only_done=True, log=said.append)
    assert list(store.resume(["a", "b"])) == [("a", {"x": 1})]
    assert any(m.startswith("b: not run (--only-done)") for m in said)
    # without it the missing row is handed back to be computed; a key listed twice after it
    # was saved is loaded, not computed again (the loop is lazy)
    store = RowStore(tmp_path)
    seen = []
    for key, saved in store.resume(["b", "b"]):
        seen.append(saved)
        if saved is None:
            store.save(key, {"y": 2})
    assert seen == [None, {"y": 2}]


def test_qm9_prune_reads_an_existing_work_dir_unchanged(tmp_path, monkeypatch):
    """A work folder in the layout qm9_prune.py has always written (rows/<target>/<method>_
    <sparsity:g>.json, no final newline, and .pt) is found and loaded by the refactored
    loop in --only-done mode; the rows not saved are left out, nothing is trained."""
    from benchmarks import qm9_rows

    monkeypatch.chdir(tmp_path)
    work = Path("runs/qm9_prune_u0_r2")  # relative, as on the command line
    folder = work / "rows" / "U0"
    folder.mkdir(parents=True)
    old = {}
    for method, sp in (("attention", 0.25), ("dense_continued", 0.0)):
        base = work / "rows" / "U0" / f"{method}_{sp:g}"  # the old row_files()
        jpath, mpath = base.with_name(base.name + ".json"), base.with_name(base.name + ".pt")
        old[method] = {"target": "U0", "method": method, "sparsity": sp,
                       "report": {"val_mae_after": 0.01}, "seconds": 1.5, "model": str(mpath)}  # fmt: skip
        jpath.write_text(json.dumps(old[method], indent=1, default=str))
        torch.save({"state": 1}, mpath)
    args = argparse.Namespace(
        work_dir=work, only_done=True, methods=["dense_continued", "attention", "magnitude"],
        sparsities=[0.25, 0.5], tp_ratios=[0.25], depth_sparsity=1 / 3, rank_energy=None,
    )  # fmt: skip
    store = qm9_rows.row_store(args, "U0")
    assert store.done("attention_0.25") and not store.done("attention_0.5")
    assert str(store.model_path("attention_0.25")) == old["attention"]["model"]
    rows = qm9_rows.run_rows("U0", None, {}, None, None, None, args)
    assert rows == [old["dense_continued"], old["attention"]]


def test_environment_record_and_finish():
    env = environment(3, packages=("torch", "no-such-package-xyz"))
    assert set(env) == {"versions", "machine"}
    assert env["versions"]["torch"] and env["versions"]["python"]
    assert env["versions"]["no-such-package-xyz"] is None
    machine = env["machine"]
    for key in ("platform", "processor", "cpu_count", "threads", "omp_wait_policy"):
        assert key in machine
    assert machine["threads"] == 3
    assert len(machine["loadavg_start"]) == 3
    assert "loadavg_end" not in machine
    assert len(finish(env)["machine"]["loadavg_end"]) == 3


def test_header_and_write_results(tmp_path):
    args = argparse.Namespace(out=tmp_path / "r.json", seeds=[0, 1])
    record = {**header("bench", args, program="python"), "rows": [{"a": 1.5}]}
    assert list(record)[:4] == ["benchmark", "timestamp", "command", "settings"]
    assert record["command"].startswith("python ")
    assert record["settings"] == {"out": str(tmp_path / "r.json"), "seeds": [0, 1]}
    write_results(args.out, record)
    text = args.out.read_text()
    assert text.endswith("}\n") and json.loads(text) == record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary left


def test_error_text():
    assert error_text(ValueError("bad width")) == "ValueError: bad width"


def test_save_figure_makes_the_folder_and_leaves_no_temporary(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "plots" / "p.png")
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["p.png"]
    assert (tmp_path / "plots" / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not plt.get_fignums()


@pytest.mark.parametrize(
    "key", ["darts_kd_s0", "content_k4_both_s0", "cdc_0.556", "dense_continued"]
)
def test_flat_row_folders_keep_their_names(tmp_path, key):
    """qm9_darts, qm9_gan and reaction_class_prune keep their rows in --work-dir/rows/ as
    <row>.json (indent 1, final newline) and <row>.pt."""
    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / f"{key}.json").write_text(json.dumps({"row": key}, indent=1) + "\n")
    store = RowStore(folder)
    assert store.done(key) and store.load(key) == {"row": key}
    assert store.model_path(key) == folder / f"{key}.pt"
