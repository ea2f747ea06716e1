"""Planner throughput: plans per second for one model across 100 machines x 5 contexts, one core.

Run ``python bench/bench_planner.py [MODEL_ID] [QUANT]``. The machines are the first 100 catalog
targets (repeated if the catalog has fewer); the contexts are 4096, 16384, 32768, 131072 tokens
and "largest that fits". The ModelSpec is built once (as a server would cache it); each plan then
runs the full placement search, the memory model, and the speed estimate when that module exists
(``--no-speed`` measures the planner alone). Every round starts with cold memo tables
(``servefit.memory.clear_caches``: breakdowns, layer splits, probes, placement searches, speed sums
and figures), so a round pays for every distinct placement once; ``--warm`` keeps them between rounds,
as a long-running server does. Per-spec tables (prefix sums over layers, per-group term arrays and
their partial sums) are built on the first plan and kept, as the ModelSpec itself is, and so are the
facts read off each Machine object (device names, memory, hardware signatures). CPU time
(``time.process_time``) is the figure to read on a shared machine. Prints the median and best over the
rounds; the goal is at least 10,000 plans per second.
"""

from __future__ import annotations

import statistics
import sys
import time

from servefit.catalog.models import model_spec
from servefit.hardware import list_targets
from servefit.memory import clear_caches
from servefit.plan import Options
from servefit.planner import make_plan

CONTEXTS: tuple[int | None, ...] = (4096, 16384, 32768, 131072, None)


def main(argv: list[str]) -> int:
    no_speed = "--no-speed" in argv
    warm = "--warm" in argv
    rounds = 7
    args = [a for a in argv[1:] if a not in ("--no-speed", "--warm")]
    model_id = args[0] if args else "nemotron-3-super-120b-a12b"
    quant = args[1] if len(args) > 1 else "Q4_K_S"
    if no_speed:
        import servefit.planner as planner_module

        setattr(planner_module, "_with_speed", lambda plan, _spec, _machine: plan)  # noqa: B010
    spec = model_spec(model_id, quant)
    targets = list(list_targets())
    machines = (targets * (100 // max(len(targets), 1) + 1))[:100]
    options = [Options(context=c) for c in CONTEXTS]
    make_plan(spec, machines[0], options[0])  # warm the per-model aggregates
    rates: list[float] = []
    best = 0.0
    for _ in range(rounds):
        if not warm:
            clear_caches()  # every round starts cold: memoised breakdowns only help within a round
        start, start_cpu = time.perf_counter(), time.process_time()
        n = 0
        fits = 0
        for machine in machines:
            for opts in options:
                fits += make_plan(spec, machine, opts).fits
                n += 1
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        best = max(best, n / elapsed)
        rates.append(n / max(elapsed_cpu, 1e-9))
    print(f"{model_id} {quant}: {n} plans ({fits} fit) over {len(machines)} machines x {len(options)} contexts")
    what = ("planner alone" if no_speed else "planner + speed estimate") + (", warm" if warm else ", cold rounds")
    median = statistics.median(rates)
    print(
        f"throughput ({what}): median {median:,.0f}, best {max(rates):,.0f} plans per CPU-second over {rounds} rounds; "
        f"best {best:,.0f} plans/s wall (goal 10,000)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
