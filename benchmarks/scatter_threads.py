"""Why the tabulated SchNet does not gain from a second thread: the neighbour sum alone.

Times the sum of per-pair messages into atoms (what each interaction block does twice) on one
and two threads, as ``index_add`` (what chemprune uses) and as a sparse CSR product, at the size
of a batch of 64 QM9 molecules at 5 A (1,150 atoms, 9,600 pairs, 128 channels). Each thread count
runs in its own process (``OMP_WAIT_POLICY`` as set, default PASSIVE). Prints milliseconds per
call and writes JSON.

    .venv/bin/python benchmarks/scatter_threads.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import loadavg, write_results  # loads no torch (the children do)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks/results/scatter_threads.json"


def measure(threads: int) -> dict[str, float]:
    import time
    import warnings

    import torch

    warnings.filterwarnings("ignore")  # CSR tensors are beta
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    n, p, f = 1150, 9600, 128
    i = torch.randint(0, n, (p,), generator=g)
    msg = torch.randn(p, f, generator=g)
    order = torch.argsort(i)
    crow = torch.zeros(n + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(i, minlength=n), 0)
    a = torch.sparse_csr_tensor(crow, order, torch.ones(p), size=(n, p))
    runs = {
        "index_add": lambda: torch.zeros(n, f).index_add_(0, i, msg),
        "csr_matmul": lambda: a @ msg,
    }
    assert torch.allclose(runs["index_add"](), runs["csr_matmul"](), atol=1e-4)
    out = {}
    with torch.inference_mode():
        for name, fn in runs.items():
            fn()
            best = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(50):
                    fn()
                best.append((time.perf_counter() - t0) / 50 * 1e3)
            out[name] = sorted(best)[2]
    return out


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(measure(int(sys.argv[2]))))
        return 0
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows = {}
    for threads in (1, 2):
        r = subprocess.run([sys.executable, __file__, "--child", str(threads)], env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
        rows[threads] = json.loads(r.stdout.strip().splitlines()[-1])
        print(
            f"{threads} thread(s): "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in rows[threads].items())
        )
    result = {"omp_wait_policy": env["OMP_WAIT_POLICY"], "ms_per_call": rows}
    result["loadavg"] = loadavg()
    write_results(OUT, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
