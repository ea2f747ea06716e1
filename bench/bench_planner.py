"""Planner throughput: plans per second for one model across 100 machines x 5 contexts, one core.

Run ``python bench/bench_planner.py [MODEL_ID] [QUANT]``. The machines are the first 100 catalog
targets (repeated if the catalog has fewer); the contexts are 4096, 16384, 32768, 131072 tokens
and "largest that fits". The ModelSpec is built once (as a server would cache it); each plan then
runs the full placement search, the memory model, and the speed estimate when that module exists.
Prints the figure; the goal is at least 10,000 plans per second.
"""

from __future__ import annotations

import sys
import time

from servefit.catalog.models import model_spec
from servefit.hardware import list_targets
from servefit.plan import Options
from servefit.planner import make_plan

CONTEXTS: tuple[int | None, ...] = (4096, 16384, 32768, 131072, None)


def main(argv: list[str]) -> int:
    model_id = argv[1] if len(argv) > 1 else "nemotron-3-super-120b-a12b"
    quant = argv[2] if len(argv) > 2 else "Q4_K_S"
    spec = model_spec(model_id, quant)
    targets = list(list_targets())
    machines = (targets * (100 // max(len(targets), 1) + 1))[:100]
    options = [Options(context=c) for c in CONTEXTS]
    make_plan(spec, machines[0], options[0])  # warm the per-model aggregates
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        n = 0
        fits = 0
        for machine in machines:
            for opts in options:
                fits += make_plan(spec, machine, opts).fits
                n += 1
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    print(f"{model_id} {quant}: {n} plans ({fits} fit) over {len(machines)} machines x {len(options)} contexts")
    print(f"planner throughput: {best:,.0f} plans/s (goal 10,000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
