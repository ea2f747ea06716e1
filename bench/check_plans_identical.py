"""Dump or compare the plans of a broad grid, to prove a planner change leaves every result byte-identical.

Run ``python bench/check_plans_identical.py dump FILE`` before a change and
``python bench/check_plans_identical.py compare FILE`` after it. Each line of FILE is one plan
(``json.dumps(plan.to_dict(), sort_keys=True)``, or the OptionsError message) under its key
(model, quant, target, options). The grid: catalog models of every kind (dense, MoE, hybrid
recurrent, sliding-window, MLA, gpt-oss) x two quantizations x catalog, workstation, unified-memory,
CPU-only and overridden targets x option sets (fixed and automatic contexts, parallel slots, flash
attention on/off/auto, quantized caches, forced ``-ngl`` / ``--n-cpu-moe``, batch sizes, no mmap).

Each plan is made once from cold memo tables (``clear_caches`` before it: the reference written or
compared), then again in grid order with the tables kept (as a server would) and once more for a
shuffled sample: a memo table keyed on too little shows up as a difference from the cold plan.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator

from servefit.catalog.models import model_spec
from servefit.errors import OptionsError
from servefit.hardware import list_targets, resolve_target
from servefit.machine import Machine
from servefit.memory import clear_caches
from servefit.model import ModelSpec
from servefit.plan import GIB, FlashAttn, Options
from servefit.planner import make_plan

MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("llama-3.1-8b-instruct", ("Q4_K_M", "Q8_0")),  # dense
    ("llama-3.2-1b-instruct", ("Q4_0", "F16")),  # dense, tied output
    ("qwen3-30b-a3b", ("Q4_K_M", "Q2_K")),  # MoE
    ("qwen3-next-80b-a3b-instruct", ("Q4_K_S",)),  # hybrid MoE (gated delta net)
    ("nemotron-3-super-120b-a12b", ("Q4_K_S", "Q8_0")),  # hybrid Mamba-2 MoE
    ("nemotron-3-nano-30b-a3b", ("Q4_K_M",)),
    ("granite-4.0-h-tiny", ("Q4_K_M",)),  # hybrid
    ("gemma-3-12b-it", ("Q4_K_M", "Q6_K")),  # sliding window
    ("gpt-oss-20b", ("MXFP4_MOE", "Q4_K_M")),  # sliding window + MoE
    ("gpt-oss-120b", ("MXFP4_MOE",)),
    ("deepseek-v3", ("Q2_K", "Q4_K_M")),  # MLA, large MoE
    ("glm-4.5-air", ("Q4_K_M",)),
    ("phi-4", ("Q4_K_M",)),
    ("mistral-small-3.1-24b-instruct-2503", ("Q5_K_M",)),
)

OPTIONS: tuple[Options, ...] = (
    Options(context=4096),
    Options(context=32768),
    Options(context=131072),
    Options(),  # the largest context that fits
    Options(context_cap=8192),
    Options(parallel=4),
    Options(context=16384, parallel=4),
    Options(flash_attn=FlashAttn.ON),
    Options(flash_attn=FlashAttn.OFF),
    Options(flash_attn=FlashAttn.OFF, cache_type_v="q8_0"),  # refused: quantized V needs flash attention
    Options(cache_type_k="q8_0", cache_type_v="q8_0"),
    Options(context=65536, cache_type_k="q4_0", cache_type_v="q8_0", flash_attn=FlashAttn.ON),
    Options(n_cpu_moe=10),
    Options(gpu_layers=20),
    Options(gpu_layers=20, n_cpu_moe=4, context=8192),
    Options(batch=4096, ubatch=1024),
    Options(ubatch=256, context=8192),
    Options(mmap=False),
    Options(gpu_margin_bytes=0, host_reserved_bytes=0),
)


def targets() -> list[Machine]:
    """Every 5th catalog target, workstations, unified-memory machines, CPU-only and overridden ones."""
    catalog = list(list_targets())
    out = catalog[::5]
    names = (
        "cpu",
        "dgx-spark",
        "mac-studio-m4-max-128gb",
        "mac-studio-m3-ultra-512gb",
        "macbook-pro-m1-max-64gb",
        "strix-halo-128gb",
        "rtx-3090x2",
        "rtx-4090",
        "2xL4",
        "4xL40S",
    )
    out += [resolve_target(n) for n in names]
    out += [
        resolve_target("cpu", ram_bytes=16 * GIB),
        resolve_target("cpu", ram_bytes=512 * GIB),
        resolve_target("rtx-4090", vram_bytes=20 * GIB, ram_bytes=32 * GIB),  # a "local"-like detection
        resolve_target("2xL4", vram_bytes=40 * GIB, ram_bytes=24 * GIB),
        resolve_target("dgx-spark", ram_bytes=64 * GIB),
    ]
    return out


def grid() -> Iterator[tuple[str, ModelSpec, Machine, int, Options]]:
    machines = targets()
    for model_id, quants in MODELS:
        for quant in quants:
            spec = model_spec(model_id, quant)
            for machine in machines:
                for i, opts in enumerate(OPTIONS):
                    yield f"{model_id} {quant} {machine.id} {machine.host_ram_bytes} {i}", spec, machine, i, opts


def render(spec: ModelSpec, machine: Machine, opts: Options) -> str:
    try:
        return json.dumps(make_plan(spec, machine, opts).to_dict(), sort_keys=True)
    except OptionsError as exc:
        return f"OptionsError: {exc}"


def run() -> tuple[dict[str, str], list[str]]:
    """(plan text per key, each made from cold memo tables; keys whose plan differs when made warm, in order)."""
    cold: dict[str, str] = {}
    cases = list(grid())
    for key, spec, machine, _i, opts in cases:
        clear_caches()
        cold[key] = render(spec, machine, opts)
    clear_caches()
    mismatched = [key for key, spec, machine, _i, opts in cases if render(spec, machine, opts) != cold[key]]
    rng = random.Random(1)  # and once more in another order
    clear_caches()
    for key, spec, machine, _i, opts in rng.sample(cases, min(len(cases), 6000)):
        if render(spec, machine, opts) != cold[key]:
            mismatched.append(key)
    return cold, mismatched


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("dump", "compare"):
        print(__doc__.split("\n\n")[1])
        return 2
    mode, path = argv[1], argv[2]
    start = time.process_time()
    plans, mismatched = run()
    print(f"{len(plans)} plans in {time.process_time() - start:.1f} CPU-s")
    for key in mismatched[:10]:
        print(f"order-dependent: {key}")
    if mode == "dump":
        with open(path, "w", encoding="utf-8") as f:
            for key, text in plans.items():
                f.write(f"{key}\t{text}\n")
        return 1 if mismatched else 0
    with open(path, encoding="utf-8") as f:
        baseline = dict(line.rstrip("\n").split("\t", 1) for line in f)
    diffs = [key for key in baseline if plans.get(key) != baseline[key]]
    missing = set(plans) ^ set(baseline)
    for key in diffs[:10]:
        print(f"differs: {key}")
    print(f"compared {len(baseline)} plans: {len(diffs)} differ, {len(missing)} keys missing on one side")
    return 1 if diffs or missing or mismatched else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
