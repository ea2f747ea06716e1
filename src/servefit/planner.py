"""Placement search: how llama.cpp should run a model on a machine, as a ``Plan``.

Strategies are tried in order of speed and the first that fits wins:

1. ``gpu``: every layer, the output layer included, on the GPU(s);
2. ``gpu+cpu-moe``: all layers on the GPU(s) but the routed experts of the first N layers in host
   RAM (``--n-cpu-moe N``, the smallest N that fits);
3. ``partial-offload``: the last K layers on the GPU(s) (``-ngl K``, the largest K that fits; MoE
   models keep all their routed experts on the host then);
4. ``cpu``: everything in host RAM;
5. ``disk``: weights memory-mapped from a file larger than free RAM; it runs, reading weights from
   disk for every token, slowly. On a GPU machine the GPUs are kept full first (every layer with the
   smallest ``--n-cpu-moe`` they hold, else the most layers ``-ngl K``), so only what they cannot
   hold is paged from disk; without GPUs (or when not even one layer fits them) ``-ngl 0``.

A strategy fits when every GPU keeps its margin free (``Options.gpu_margin_bytes``, 1 GiB by default
as llama.cpp's ``--fit``) and the host keeps ``Options.host_reserved_bytes`` free: unlike
llama.cpp's fit, host RAM is checked. Fit is decided at a minimum context (the requested one, or
4096 tokens); the context is then grown, in steps of 256, to the largest that still fits, up to the
trained context (or ``Options.context_cap``). Multi-GPU splits are contiguous layer ranges sized
in proportion to each GPU's free memory, written as ``-ts`` layer counts so that llama.cpp places
exactly the layers planned.

Fast paths (results identical to the plain computation; tests/unit/test_planner_fastpaths.py and
bench/check_plans_identical.py compare them): probes are memoised under small int keys
(``_probe``), whole searches under what they read, with the host budget as an interval and the
reasons as templates that name neither the GPUs nor the budget (``_search``, ``_why``, ``_slack``);
what a Machine or a (spec, options) pair implies is derived once per object (``_hardware``,
``_request``); each ``-ts`` boundary is walked to from a proportional guess over prefix sums shared
per context (``_compute_split``, ``_split_base``); the ``--n-cpu-moe`` and ``-ngl`` gallops stop where
the host is already over budget and, on one GPU, skip placements whose GPU bytes are known to be over
(``_guided_smallest``, ``_cpu_moe_gpu_bytes``); the GPU rows of the device table are shared per
placement (``_devices``); and the Plan is built from one dict (``_new_plan``). Every memo table is
emptied by ``servefit.memory.clear_caches``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servefit import memory
from servefit.errors import OptionsError
from servefit.machine import Machine
from servefit.memory import (
    CACHE_TYPES,
    Breakdown,
    Context,
    Layout,
    Profile,
    context_cells,
    gpu_overhead_bytes,
    is_quantized_cache_type,
    profile,
    profile_breakdown,
)
from servefit.model import ModelSpec
from servefit.plan import GIB, DeviceUsage, FlashAttn, Options, Plan, Strategy

__all__ = ["MIN_CONTEXT", "make_plan"]

MIN_CONTEXT = 4096  # as llama.cpp's fit (fit_params_min_ctx): the smallest context worth serving
_HUGE_TRAINED_CONTEXT = 1 << 20
_MAX_SEQ = 256  # LLAMA_MAX_SEQ (src/llama-cparams.h)
_MAX_CTX = (1 << 32) - 256  # n_ctx is a uint32_t, padded to 256
_DEVICE_PREFIX = {"cuda12": "CUDA", "cuda13": "CUDA", "rocm": "ROCm", "vulkan": "Vulkan", "metal": "MTL"}


@dataclass(slots=True)
class _Setup:
    """Everything fixed for one (spec, machine, options) planning run."""

    spec: ModelSpec
    prof: Profile
    machine: Machine
    opts: Options
    n_gpu: int
    budgets: tuple[int, ...]  # per GPU: capacity minus margin
    host_budget: int
    flash_attn: bool
    backend: str
    overhead: int
    n_seq: int
    min_ctx: int
    max_ctx: int
    fixed_ctx: bool
    probe_sig: int  # names what a placement's bytes depend on besides (n_ctx, -ngl, --n-cpu-moe); see _probe
    unified: bool  # GPU memory is host RAM
    hw: _Hardware
    # what the search's outcome says of the host budget (see _search): it is at least host_floor, below
    # host_ceil, and exactly host_budget when host_exact
    host_floor: int = 0
    host_ceil: int = 1 << 62
    host_exact: bool = False
    contexts: dict[int, Context] = field(default_factory=dict)  # Context per n_ctx, built once
    layouts: dict[tuple[int, int, int], Layout] = field(default_factory=dict)  # Layout per placement, built once


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _round_ctx(n: int) -> int:
    return max(256, -(-n // 256) * 256)


def _context(setup: _Setup, n_ctx: int) -> Context:
    ctx = setup.contexts.get(n_ctx)
    if ctx is None:
        o = setup.opts
        ctx = Context(
            n_ctx=n_ctx,
            n_seq=setup.n_seq,
            n_batch=o.batch,
            n_ubatch=o.ubatch,
            type_k=o.cache_type_k,
            type_v=o.cache_type_v,
            flash_attn=setup.flash_attn,
        )
        setup.contexts[n_ctx] = ctx
    return ctx


def _evaluate(setup: _Setup, n_ctx: int, layout: Layout) -> Breakdown:
    ctx = setup.contexts.get(n_ctx) or _context(setup, n_ctx)
    return profile_breakdown(setup.spec, setup.prof, ctx, layout, setup.backend, setup.overhead)


# Probe memo. A placement's Layout and Breakdown depend on the model profile, the backend and its
# overhead, the context parameters from the options, mmap, and (with several GPUs, through the
# balanced -ts split) the GPU budgets; given those, on (n_ctx, -ngl, --n-cpu-moe) alone. Each
# distinct set of the former gets a number (``_probe_signature``), and probes are memoised under
# (number, n_ctx, -ngl, --n-cpu-moe): a key of four small ints hashes in a fraction of the time the
# Context and Layout dataclasses take, and machines that share a GPU count (one GPU: any memory
# size; several: the same budgets) share probes. Numbers are never reused, so clearing is safe.

_PROBE_SIGS: dict[tuple[object, ...], tuple[Profile, int]] = {}
_PROBE_SIG_IDS = itertools.count()
_PROBES: dict[tuple[int, int, int, int], tuple[Layout, Breakdown]] = {}


def _signature(prof: Profile, key: tuple[object, ...]) -> int:
    """The number of ``key`` (which starts with ``id(prof)``), for as long as ``prof`` lives."""
    hit = _PROBE_SIGS.get(key)
    if hit is None or hit[0] is not prof:
        if len(_PROBE_SIGS) > 65536:
            _PROBE_SIGS.clear()
        hit = _PROBE_SIGS[key] = (prof, next(_PROBE_SIG_IDS))
    return hit[1]


def _probe_signature(req: _Request, hw: _Hardware, budgets: tuple[int, ...]) -> int:
    key = (id(req.prof), req.sig, hw.n_gpu, budgets if hw.n_gpu > 1 else (), hw.backend, hw.overhead)
    return _signature(req.prof, key)


def _probe(setup: _Setup, n_ctx: int, gpu_layers: int, n_cpu_moe: int) -> tuple[Layout, Breakdown]:
    """The Layout ``_layout`` builds and its Breakdown (memoised; see ``_probe_signature``)."""
    key = (setup.probe_sig, n_ctx, gpu_layers, n_cpu_moe)
    hit = _PROBES.get(key)
    if hit is None:
        layout = _layout(setup, n_ctx, gpu_layers, n_cpu_moe)
        hit = (layout, _evaluate(setup, n_ctx, layout))
        if len(_PROBES) > 65536:
            _PROBES.clear()
        _PROBES[key] = hit
    return hit


def _clear_probes() -> None:
    _PROBES.clear()


memory._CLEARERS.append(_clear_probes)


def _host_need(setup: _Setup, b: Breakdown, *, disk: bool = False) -> int:
    need = b.host_total - (b.host_weights - b.host_weights_repack if disk else 0)
    if setup.unified:
        need += sum(b.gpu_total)
    return need


def _fits(setup: _Setup, b: Breakdown, *, disk: bool = False) -> bool:
    for t, cap in zip(b.gpu_total, setup.budgets):  # noqa: B905 - as many totals as budgets
        if t > cap:
            return False
    need = b.host_total - (b.host_weights - b.host_weights_repack if disk else 0)
    if setup.unified:
        need += sum(b.gpu_total)
    if need <= setup.host_budget:
        if need > setup.host_floor:
            setup.host_floor = need
        return True
    if need < setup.host_ceil:
        setup.host_ceil = need
    return False


# ------------------------------------------------------------------------------------------------
# multi-GPU split
# ------------------------------------------------------------------------------------------------


_SPLITS: dict[tuple[object, ...], tuple[Profile, tuple[float, ...]]] = {}


def _balanced_split(setup: _Setup, n_ctx: int, gpu_layers: int, n_cpu_moe: int) -> tuple[float, ...]:
    """-ts as layer counts: contiguous ranges whose GPU bytes follow each GPU's free memory (memoised)."""
    if setup.n_gpu <= 1:
        return ()
    o = setup.opts
    key = (
        id(setup.prof),
        n_ctx,
        gpu_layers,
        n_cpu_moe,
        setup.budgets,
        setup.overhead,
        setup.n_seq,
        o.batch,
        o.ubatch,
        o.cache_type_k,
        o.cache_type_v,
        setup.flash_attn,
    )
    hit = _SPLITS.get(key)
    if hit is not None and hit[0] is setup.prof:
        return hit[1]
    if len(_SPLITS) > 65536:
        _SPLITS.clear()
    result = _compute_split(setup, n_ctx, gpu_layers, n_cpu_moe)
    _SPLITS[key] = (setup.prof, result)
    return result


memory._CLEARERS.append(_SPLITS.clear)


def _compute_split(setup: _Setup, n_ctx: int, gpu_layers: int, n_cpu_moe: int) -> tuple[float, ...]:
    n = setup.n_gpu
    prof = setup.prof
    n_layer = prof.n_layer
    start = max(n_layer + 1 - gpu_layers, 0)
    ctx = _context(setup, n_ctx)
    fixed = _split_base(setup, ctx)
    experts = prof.experts.cuda
    ncm = min(n_cpu_moe, n_layer)

    def cum(i: int) -> int:  # GPU bytes of layers [0, i) if they were all on a GPU (nondecreasing in i)
        return fixed[i] + experts[i] - experts[min(i, ncm)]

    base = cum(start)
    total_cost = cum(n_layer) - base + prof.output.cuda
    free = [max(b - setup.overhead, 1) for b in setup.budgets]
    total_free = sum(free)
    counts: list[int] = []
    prev = start
    target = 0.0
    at_end = cum(n_layer) - base
    at_prev = 0  # cum(prev) - base
    for g in range(n - 1):
        target += total_cost * free[g] / total_free
        # lo: the largest i in (prev, n_layer] with cum(i) - base <= target, else prev (cum is
        # nondecreasing). Walked to from where it would be were the layers after prev all the same
        # size: a layer or two away, where bisecting (prev, n_layer] takes about log2(n_layer) steps.
        lo = prev
        if n_layer > prev:
            per_layer = (at_end - at_prev) / (n_layer - prev)
            guess = prev + int((target - at_prev) / per_layer) if per_layer > 0 else n_layer
            lo = min(max(guess, prev), n_layer)
        at_lo = cum(lo) - base
        at_next = None  # cum(lo + 1) - base, once known
        if at_lo <= target:
            while lo < n_layer:
                at_next = cum(lo + 1) - base
                if at_next > target:
                    break
                lo, at_lo, at_next = lo + 1, at_next, None
        else:
            while lo > prev:
                at_next = at_lo
                lo -= 1
                at_lo = cum(lo) - base
                if at_lo <= target:
                    break
            if at_lo > target:  # lo == prev: nothing in (prev, n_layer] is within the target
                at_next = None
        if lo < n_layer:
            if at_next is None:
                at_next = cum(lo + 1) - base
            if at_next - target < target - at_lo:  # round to the nearer layer boundary
                lo, at_lo = lo + 1, at_next
        at_prev = at_lo
        counts.append(lo - prev)
        prev = lo
    counts.append(n_layer + 1 - start - sum(counts))
    return tuple(float(c) for c in counts)


_SPLIT_BASES: dict[tuple[object, ...], tuple[Profile, tuple[int, ...]]] = {}
memory._CLEARERS.append(_SPLIT_BASES.clear)


def _split_base(setup: _Setup, ctx: Context) -> tuple[int, ...]:
    """Per layer boundary i, the GPU bytes of layers [0, i) but their routed experts: dense weights, KV
    cache and recurrent state (prefix sums, built once per context shape and shared by every ``-ngl`` /
    ``--n-cpu-moe`` split at that context); ``_compute_split`` adds the experts kept on the GPUs."""
    prof = setup.prof
    _n_ctx, cells, swa_cells = context_cells(ctx, prof.n_swa)
    n_stream = max(1, setup.n_seq)
    key = (id(prof), ctx.type_k, ctx.type_v, ctx.flash_attn, cells * n_stream, swa_cells * n_stream, n_stream)
    hit = _SPLIT_BASES.get(key)
    if hit is not None and hit[0] is prof:
        return hit[1]
    full_p, swa_p = prof.kv_row_prefix(ctx.type_k, ctx.type_v, ctx.flash_attn)
    kv_full, kv_swa = cells * n_stream, swa_cells * n_stream
    rec = prof.recurrent_row_bytes * n_stream
    dense, rcount = prof.dense.cuda, prof.recurrent_count
    base = tuple(
        [dense[i] + full_p[i] * kv_full + swa_p[i] * kv_swa + rcount[i] * rec for i in range(prof.n_layer + 1)]
    )
    if len(_SPLIT_BASES) > 4096:
        _SPLIT_BASES.clear()
    _SPLIT_BASES[key] = (prof, base)
    return base


def _layout(setup: _Setup, n_ctx: int, gpu_layers: int, n_cpu_moe: int) -> Layout:
    # the split depends on the context only with several GPUs: one Layout per placement otherwise
    key = (n_ctx if setup.n_gpu > 1 else 0, gpu_layers, n_cpu_moe)
    layout = setup.layouts.get(key)
    if layout is None:
        layout = Layout(
            n_gpu=setup.n_gpu,
            gpu_layers=gpu_layers,
            tensor_split=_balanced_split(setup, n_ctx, gpu_layers, n_cpu_moe) if gpu_layers > 0 else (),
            n_cpu_moe=n_cpu_moe,
            mmap=setup.opts.mmap,
        )
        setup.layouts[key] = layout
    return layout


# ------------------------------------------------------------------------------------------------
# searches
# ------------------------------------------------------------------------------------------------


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """Largest x in [lo, hi] with ok(x), for ok monotone decreasing; None when ok(lo) fails."""
    if lo > hi or not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """Smallest x in [lo, hi] with ok(x), for ok monotone increasing; None when ok(hi) fails."""
    if lo > hi or not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _max_context(
    setup: _Setup,
    probe: Callable[[int], tuple[Layout, Breakdown]],
    *,
    disk: bool = False,
    known: tuple[int, Layout, Breakdown] | None = None,
) -> tuple[int, Layout, Breakdown, bool]:
    """(context, layout, breakdown, fits): the largest context (multiple of 256) that fits with the
    layout ``probe`` gives for it; when even the minimum context does not fit, that breakdown.

    Memory grows about linearly with context, so the answer is found by secant steps on the
    slack of the tightest budget, then confirmed by bisection inside the bracket they leave.
    ``known`` is an evaluation already made (at the minimum context) to reuse.
    """
    if setup.fixed_ctx:  # one context to check: the probe below without its bookkeeping
        n_ctx = setup.min_ctx // 256 * 256
        if known is not None and known[0] // 256 * 256 == n_ctx:
            return n_ctx, known[1], known[2], _fits(setup, known[2], disk=disk)
        layout, b = probe(n_ctx)
        return n_ctx, layout, b, _fits(setup, b, disk=disk)
    cache: dict[int, tuple[bool, Breakdown, Layout]] = {}
    if known is not None:
        cache[known[0] // 256] = (_fits(setup, known[2], disk=disk), known[2], known[1])

    def check(steps: int) -> tuple[bool, Breakdown, Layout]:
        hit = cache.get(steps)
        if hit is None:
            layout, b = probe(steps * 256)
            hit = (_fits(setup, b, disk=disk), b, layout)
            cache[steps] = hit
        return hit

    lo = setup.min_ctx // 256
    hi = lo if setup.fixed_ctx else setup.max_ctx // 256
    ok_lo, b_lo, layout_lo = check(lo)
    if not ok_lo:
        return lo * 256, layout_lo, b_lo, False
    if hi > lo:
        ok_hi, b_hi, _l = check(hi)
        if ok_hi:
            lo = hi
        else:
            # bracket: lo fits, hi does not; secant steps on the slack, then bisection
            x0, s0 = lo, _slack(setup, b_lo, disk)
            x1, s1 = hi, _slack(setup, b_hi, disk)
            for _ in range(4):
                if hi - lo <= 1 or s0 == s1:
                    break
                guess = int(x0 + s0 * (x1 - x0) / (s0 - s1))
                guess = min(max(guess, lo + 1), hi - 1)
                ok_g, b_g, _l = check(guess)
                if ok_g:
                    lo = guess
                    if not check(guess + 1)[0]:
                        hi = guess + 1
                        break
                else:
                    hi = guess
                x0, s0, x1, s1 = x1, s1, guess, _slack(setup, b_g, disk)
            best = _largest(lo, hi - 1, lambda x: check(x)[0])
            lo = best if best is not None else lo
    ok, b, layout = check(lo)
    return lo * 256, layout, b, ok


def _slack(setup: _Setup, b: Breakdown, disk: bool) -> float:
    """Free bytes left on the tightest budget (negative when over); GPUs count together, as the split
    follows their free memory.

    The secant steps use this value. When a GPU is the tightest, the value is the same for every host
    budget that leaves the host at least as much slack: that bound joins the host budget's interval
    (``_search``); only a host-bound slack ties the search to the budget's exact value.
    """
    need = _host_need(setup, b, disk=disk)
    host = float(setup.host_budget - need)
    if not setup.n_gpu:
        setup.host_exact = True
        return host
    gpus = min(
        float(sum(setup.budgets) - sum(b.gpu_total)),
        float(min(cap - t for t, cap in zip(b.gpu_total, setup.budgets, strict=True))) * setup.n_gpu,
    )
    if host < gpus:
        setup.host_exact = True
        return host
    # host >= gpus holds for every budget with budget - need >= ceil(gpus) (integers: exact as floats)
    floor = need + math.ceil(gpus)
    if floor > setup.host_floor:
        setup.host_floor = floor
    return gpus


def _overflow(setup: _Setup, b: Breakdown) -> int:
    """Bytes that must leave the GPUs for ``b`` to fit them (0 when it does)."""
    over = sum(max(t - cap, 0) for t, cap in zip(b.gpu_total, setup.budgets, strict=True))
    return max(over, sum(b.gpu_total) - sum(setup.budgets))


@dataclass(slots=True)
class _Choice:
    strategy: Strategy
    n_ctx: int
    layout: Layout
    breakdown: Breakdown


def _try_gpu(setup: _Setup, reasons: list[str], state: dict[str, int]) -> _Choice | None:
    full = setup.prof.n_layer + 1
    n_ctx, layout, b, ok = _max_context(setup, lambda c: _probe(setup, c, full, 0))
    if not ok:
        reasons.append(_why(setup, "all layers on GPU", n_ctx, b))
        state["overflow"] = _overflow(setup, b)
        return None
    return _Choice(Strategy.GPU, n_ctx, layout, b)


def _guided_smallest(
    lo: int, hi: int, guess: int, ok: Callable[[int], bool], hopeless: Callable[[int], bool] | None = None
) -> int | None:
    """Smallest x in [lo, hi] with ok(x) (monotone increasing), galloping from ``guess``.

    ``hopeless(x)``, asked only after ok(x) failed, says that ok fails at every y >= x as well (the
    host is over budget at x, and its need only grows with y): the gallop up to ``hi`` would find
    nothing, so None is returned without it.
    """
    guess = min(max(guess, lo), hi)
    if ok(guess):
        if guess == lo or not ok(guess - 1):
            return guess
        step, top = 1, guess - 1
        while top - step >= lo and ok(top - step):
            top, step = top - step, step * 2
        return _smallest(max(lo, top - step + 1), top, ok)
    if hopeless is not None and hopeless(guess):
        return None
    step, bottom = 1, guess
    while bottom + step < hi and not ok(bottom + step):
        bottom, step = bottom + step, step * 2
    return _smallest(bottom + 1, min(hi, bottom + step), ok)


def _try_cpu_moe(setup: _Setup, reasons: list[str], state: dict[str, int]) -> _Choice | None:
    prof = setup.prof
    if prof.moe_layers == 0:
        return None
    full = prof.n_layer + 1
    c0 = setup.min_ctx
    e = prof.experts.cuda  # prefix sums
    results: dict[int, tuple[bool, Breakdown]] = {}
    seen: list[tuple[int, int]] = []  # one GPU: (n, GPU bytes) of the first placement evaluated

    def ok(n: int) -> bool:
        hit = results.get(n)
        if hit is None:
            if seen and _cpu_moe_gpu_bytes(e, *seen[0], n) > setup.budgets[0]:
                return False  # over the GPU's budget: _fits would say so before reading the host
            b = _probe(setup, c0, full, n)[1]
            hit = (_fits(setup, b), b)
            results[n] = hit
            if setup.n_gpu == 1 and not seen:
                seen.append((n, b.gpu_total[0]))
        return hit[0]

    def hopeless(n: int) -> bool:
        hit = results.get(n)
        return hit is not None and _host_bound(setup, hit[1])

    # first guess: move experts off the GPUs, from layer 0 up, until the overflow is covered
    need = state.get("overflow", 0)
    guess = min(bisect.bisect_left(e, need, prof.first_moe_layer + 1, prof.n_layer + 1), prof.n_layer)
    n_cpu_moe = _guided_smallest(prof.first_moe_layer + 1, prof.n_layer, guess, ok, hopeless)
    if n_cpu_moe is None:
        b = _probe(setup, c0, full, prof.n_layer)[1]
        reasons.append(_why(setup, "all layers on GPU with every expert on the host", c0, b))
        return None
    known = (c0, *_probe(setup, c0, full, n_cpu_moe))
    n_ctx, layout, b, fits = _max_context(setup, lambda c: _probe(setup, c, full, n_cpu_moe), known=known)
    if not fits:  # pragma: no cover - ok(n_cpu_moe) held at the minimum context
        return None
    return _Choice(Strategy.GPU_CPU_MOE, n_ctx, layout, b)


def _cpu_moe_gpu_bytes(experts: tuple[int, ...], n_seen: int, gpu_seen: int, n: int) -> int:
    """GPU bytes, on one GPU holding every layer, with the routed experts of the first ``n`` layers on the
    host, from those of the placement with ``n_seen`` (both at least 1, at one context).

    Only the GPU's expert weights differ (``memory._breakdown``: ``e_cuda[n_layer] - e_cuda[n]``); the
    compute buffer is the same once any expert is on the host, and the KV cache, recurrent state and
    runtime overhead do not depend on ``n``. ``_try_cpu_moe`` skips the placements this puts over the
    GPU's budget, which ``_fits`` would refuse without reading the host.
    """
    return gpu_seen + experts[n_seen] - experts[n]


def _try_partial(setup: _Setup, reasons: list[str], state: dict[str, int]) -> _Choice | None:
    prof = setup.prof
    c0 = setup.min_ctx
    cpu_moe = prof.n_layer if prof.moe_layers else 0
    results: dict[int, tuple[bool, Breakdown]] = {}

    def ok(k: int) -> bool:
        hit = results.get(k)
        if hit is None:
            b = _probe(setup, c0, k, cpu_moe)[1]
            hit = (_fits(setup, b), b)
            results[k] = hit
        return hit[0]

    # first guess: GPU bytes per layer on average, against the GPUs' budget
    per_layer = max((prof.dense.cuda[-1] + (0 if cpu_moe else prof.experts.cuda[-1])) // max(prof.n_layer, 1), 1)
    guess = min(prof.n_layer, max(1, sum(setup.budgets) // per_layer))
    k = _guided_smallest(
        1,
        prof.n_layer,
        prof.n_layer + 1 - guess,
        lambda x: ok(prof.n_layer + 1 - x),
        lambda x: _host_bound(setup, results[prof.n_layer + 1 - x][1]),
    )
    if k is None:
        ok(1)
        reasons.append(_why(setup, "one layer on GPU", c0, results[1][1]))
        return None
    ngl = prof.n_layer + 1 - k
    known = (c0, *_probe(setup, c0, ngl, cpu_moe))
    n_ctx, layout, b, fits = _max_context(setup, lambda c: _probe(setup, c, ngl, cpu_moe), known=known)
    if not fits:  # pragma: no cover
        return None
    return _Choice(Strategy.PARTIAL_OFFLOAD, n_ctx, layout, b)


def _host_bound(setup: _Setup, b: Breakdown) -> bool:
    """Whether the host is over budget with placement ``b`` (GPUs separate from host RAM).

    Moving more routed experts (``--n-cpu-moe``) or more layers (``-ngl``) to the host only adds to
    what the host holds, so every placement past this one fails there too (``_guided_smallest``).
    The comparison joins the host budget's interval (``_search``) either way.
    """
    if setup.unified:
        return False
    need = _host_need(setup, b)
    if need > setup.host_budget:
        if need < setup.host_ceil:
            setup.host_ceil = need
        return True
    if need > setup.host_floor:
        setup.host_floor = need
    return False


def _try_cpu(setup: _Setup, reasons: list[str], state: dict[str, int], *, disk: bool = False) -> _Choice | None:
    # reading from disk only helps for mapped weights: repacked CPU weights are copies in RAM
    layout = Layout(n_gpu=setup.n_gpu, gpu_layers=0, mmap=setup.opts.mmap or disk, cpu_repack=not disk)
    n_ctx, layout, b, fits = _max_context(setup, lambda c: (layout, _evaluate(setup, c, layout)), disk=disk)
    if not fits:
        if not disk:
            reasons.append(_why(setup, "everything in host RAM", n_ctx, b))
        else:
            reasons.append(  # the comparison with the host budget is the one _fits recorded
                f"reading weights from disk: even without the weights, the host needs "
                f"{_gib(_host_need(setup, b, disk=True))} at {n_ctx} tokens of context, "
                f"more than the {{host}} available"
            )
        return None
    return _Choice(Strategy.DISK if disk else Strategy.CPU, n_ctx, layout, b)


def _try_gpu_disk(setup: _Setup, reasons: list[str], state: dict[str, int]) -> _Choice | None:
    """Reading from disk with the GPUs kept full: what the GPUs cannot hold stays memory-mapped.

    For a MoE model, every layer on the GPUs with the smallest ``--n-cpu-moe`` they hold (only routed
    experts are paged from disk); otherwise, or when even that overflows the GPUs, the most layers
    the GPUs hold (``-ngl K``; a MoE model keeps all its routed experts on the host then). Either
    reads far less from disk per token than running everything on the CPU (``-ngl 0``). The host is
    not the limit here (its mapped weights are paged), so both gallops start from the guesses of
    ``gpu+cpu-moe`` and ``partial-offload``, which follow the GPUs' budgets.
    """
    prof = setup.prof
    c0 = setup.min_ctx
    full = prof.n_layer + 1
    if prof.moe_layers:
        lo = prof.first_moe_layer + 1
        guess = min(bisect.bisect_left(prof.experts.cuda, state.get("overflow", 0), lo, full), prof.n_layer)
        n = _guided_smallest(lo, prof.n_layer, guess, lambda k: _fits(setup, _probe(setup, c0, full, k)[1], disk=True))
        if n is not None:
            n_ctx, layout, b, fits = _max_context(setup, lambda c: _probe(setup, c, full, n), disk=True)
            if fits:
                return _Choice(Strategy.DISK, n_ctx, layout, b)
    cpu_moe = prof.n_layer if prof.moe_layers else 0
    per_layer = max((prof.dense.cuda[-1] + (0 if cpu_moe else prof.experts.cuda[-1])) // max(prof.n_layer, 1), 1)
    guess = min(prof.n_layer, max(1, sum(setup.budgets) // per_layer))

    def ok(host_layers: int) -> bool:  # -ngl n_layer + 1 - host_layers fits the GPUs
        return _fits(setup, _probe(setup, c0, full - host_layers, cpu_moe)[1], disk=True)

    k = _guided_smallest(1, prof.n_layer, full - guess, ok)
    if k is None:
        return None
    ngl = full - k
    n_ctx, layout, b, fits = _max_context(setup, lambda c: _probe(setup, c, ngl, cpu_moe), disk=True)
    return _Choice(Strategy.DISK, n_ctx, layout, b) if fits else None


def _why(setup: _Setup, what: str, n_ctx: int, b: Breakdown) -> str:
    """Why a placement does not fit, as a template (``_reasons``: GPU names and the host budget to fill in)."""
    parts: list[str] = []
    for i, (t, cap) in enumerate(zip(b.gpu_total, setup.budgets, strict=True)):
        if t > cap:
            parts.append(f"{{gpu[{i}]}} needs {_gib(t)} of {_gib(cap)} usable")
    host = _host_need(setup, b)
    if host > setup.host_budget:
        if host < setup.host_ceil:
            setup.host_ceil = host
        parts.append(f"host needs {_gib(host)} of {{host}} usable RAM")
    elif host > setup.host_floor:
        setup.host_floor = host
    return f"{what}: " + ("; ".join(parts) or "does not fit") + f" (at {n_ctx} tokens of context)"


def _reasons(setup: _Setup, templates: tuple[str, ...]) -> list[str]:
    """The reasons a search recorded, with the machine's GPU names and host budget written in.

    A search's reasons leave out what only names the machine (``{gpu[i]}``, ``{host}``), so that its
    outcome depends on the host budget through comparisons alone and is shared across machines
    (``_search``); the texts are otherwise made of numbers and fixed words, without braces.
    """
    if not templates:
        return []
    host = _gib(setup.host_budget)
    names = setup.hw.gpu_names
    return [t.format(host=host, gpu=names) if "{" in t else t for t in templates]


# ------------------------------------------------------------------------------------------------
# the plan
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hardware:
    """What planning reads from a Machine, derived once per Machine object (``_hardware``)."""

    machine: Machine
    backend: str
    n_gpu: int  # GPUs planned on (none on the CPU backend)
    overhead: int  # runtime bytes per GPU
    memories: tuple[int, ...]  # memory_bytes of the GPUs planned on
    vram_total_bytes: int
    gpu_names: tuple[str, ...]  # "CUDA0 (NVIDIA L4)", per device
    capacities: tuple[int, ...]  # memory_bytes per device


@dataclass(frozen=True, slots=True)
class _Request:
    """What planning derives from a (spec, options) pair alone, once per pair of objects (``_request``)."""

    spec: ModelSpec
    opts: Options  # validated
    prof: Profile
    flash_attn: bool
    n_seq: int
    min_ctx: int
    max_ctx: int
    fixed_ctx: bool
    sig: int  # names the profile and the options a placement's bytes depend on


_HARDWARE: dict[int, _Hardware] = {}
_REQUESTS: dict[tuple[int, int], _Request] = {}


def _hardware(machine: Machine) -> _Hardware:
    hit = _HARDWARE.get(id(machine))
    if hit is not None and hit.machine is machine:
        return hit
    backend = str(machine.backend)
    n_gpu = len(machine.devices) if backend != "cpu" else 0
    prefix = _DEVICE_PREFIX.get(backend, "GPU")
    memories = tuple(d.memory_bytes for d in machine.devices[:n_gpu])
    hit = _Hardware(
        machine=machine,
        backend=backend,
        n_gpu=n_gpu,
        overhead=gpu_overhead_bytes(backend),
        memories=memories,
        vram_total_bytes=sum(memories),
        gpu_names=tuple(f"{prefix}{i} ({d.name})" for i, d in enumerate(machine.devices)),
        capacities=tuple(d.memory_bytes for d in machine.devices),
    )
    if len(_HARDWARE) > 4096:
        _HARDWARE.clear()
    _HARDWARE[id(machine)] = hit
    return hit


def _request(spec: ModelSpec, opts: Options) -> _Request:
    """The validated options with what follows from them for ``spec`` (both frozen: derived once per pair)."""
    hit = _REQUESTS.get((id(spec), id(opts)))
    if hit is not None and hit.spec is spec and hit.opts is opts:
        return hit
    _validate(opts)
    prof = profile(spec)
    trained = spec.trained_context or MIN_CONTEXT
    cap_per_slot = opts.context_cap or trained
    n_seq = opts.parallel
    flash = _resolve_flash_attn(spec, opts)
    if opts.context is not None:
        min_ctx = max_ctx = _round_ctx(opts.context)
    else:
        max_ctx = max(256, cap_per_slot // 256 * 256) * n_seq
        min_ctx = min(_round_ctx(MIN_CONTEXT * n_seq), max_ctx)
    sig_key = (id(prof), n_seq, opts.batch, opts.ubatch, opts.cache_type_k, opts.cache_type_v, flash, opts.mmap)
    hit = _Request(
        spec=spec,
        opts=opts,
        prof=prof,
        flash_attn=flash,
        n_seq=n_seq,
        min_ctx=min_ctx,
        max_ctx=max_ctx,
        fixed_ctx=opts.context is not None,
        sig=_signature(prof, sig_key),
    )
    if len(_REQUESTS) > 256:  # each holds its spec alive
        _REQUESTS.clear()
    _REQUESTS[(id(spec), id(opts))] = hit
    return hit


# per-Machine facts stay (as the speed estimate's per-machine table does); per-request ones are cleared
memory._CLEARERS.append(_REQUESTS.clear)


def _resolve_flash_attn(spec: ModelSpec, opts: Options) -> bool:
    if opts.flash_attn is FlashAttn.ON:
        return True
    if opts.flash_attn is FlashAttn.OFF:
        if is_quantized_cache_type(opts.cache_type_v):
            raise OptionsError(
                f"a quantized V cache ({opts.cache_type_v}) needs flash attention: use --flash-attn on or auto",
                option="cache-type-v",
            )
        return False
    # auto: llama.cpp enables it where the backend supports the head size (CPU and CUDA do for the
    # usual sizes); keep it off only where a quantized V cache is not asked and the head size is odd
    head = spec.hparams.n_embd_head_k
    return head % 8 == 0 or is_quantized_cache_type(opts.cache_type_v)


def _validate(opts: Options) -> None:
    if not 1 <= opts.parallel <= _MAX_SEQ:
        raise OptionsError(f"parallel slots must be between 1 and {_MAX_SEQ}, got {opts.parallel}", option="parallel")
    if opts.ubatch < 1 or opts.batch < 1:
        raise OptionsError("batch and ubatch must be positive", option="ubatch")
    if opts.ubatch > opts.batch:
        raise OptionsError(f"ubatch ({opts.ubatch}) cannot exceed batch ({opts.batch})", option="ubatch")
    for name, value in (("cache-type-k", opts.cache_type_k), ("cache-type-v", opts.cache_type_v)):
        if value.lower() not in CACHE_TYPES:
            raise OptionsError(f"unknown {name} {value!r}: expected one of {', '.join(CACHE_TYPES)}", option=name)
    if opts.context is not None and not 1 <= opts.context <= _MAX_CTX:
        raise OptionsError(f"context must be between 1 and {_MAX_CTX:,} tokens, got {opts.context:,}", option="ctx")
    if opts.batch > _MAX_CTX or opts.ubatch > _MAX_CTX:
        raise OptionsError("batch and ubatch must be at most the largest context", option="batch")
    if opts.context_cap is not None and opts.context_cap < 256:
        raise OptionsError(f"context cap must be at least 256, got {opts.context_cap}", option="ctx")


def _setup(spec: ModelSpec, machine: Machine, opts: Options) -> _Setup:
    req = _request(spec, opts)
    hw = _hardware(machine)
    margin = opts.gpu_margin_bytes
    budgets = tuple([m - margin if m > margin else 0 for m in hw.memories])
    host = machine.host_ram_bytes - opts.host_reserved_bytes
    return _Setup(
        spec,
        req.prof,
        machine,
        opts,
        hw.n_gpu,
        budgets,
        host if host > 0 else 0,
        req.flash_attn,
        hw.backend,
        hw.overhead,
        req.n_seq,
        req.min_ctx,
        req.max_ctx,
        req.fixed_ctx,
        _probe_signature(req, hw, budgets),
        machine.unified_memory,
        hw,
    )


def _forced(setup: _Setup, reasons: list[str]) -> _Choice | None:
    """The user fixed -ngl and/or --n-cpu-moe: evaluate that placement only."""
    prof = setup.prof
    o = setup.opts
    ngl = prof.n_layer + 1 if o.gpu_layers is None else max(0, min(o.gpu_layers, prof.n_layer + 1))
    if setup.n_gpu == 0:
        ngl = 0
    n_cpu_moe = max(0, min(o.n_cpu_moe or 0, prof.n_layer))
    n_ctx, layout, b, fits = _max_context(setup, lambda c: _probe(setup, c, ngl, n_cpu_moe))
    if not fits:
        reasons.append(_why(setup, f"-ngl {ngl} --n-cpu-moe {n_cpu_moe}", n_ctx, b))
        return None
    if ngl == 0:
        strategy = Strategy.CPU
    elif ngl <= prof.n_layer:
        strategy = Strategy.PARTIAL_OFFLOAD
    elif n_cpu_moe > prof.first_moe_layer and prof.moe_layers:
        strategy = Strategy.GPU_CPU_MOE
    else:
        strategy = Strategy.GPU
    return _Choice(strategy, n_ctx, layout, b)


# Search memo. Given everything else a search reads (the probe signature, the GPU budgets, unified
# memory, the context bounds, forced -ngl / --n-cpu-moe), its outcome depends on the host budget only
# through comparisons ``need <= host_budget`` (``_fits``, ``_why``), unless the budget's value itself is
# used: in the secant steps of the largest-context search (``_slack``). Reasons are kept as templates
# that leave the GPU names and the host budget out (``_why``, ``_reasons``), so neither is part of the
# outcome. A search records the interval of host budgets its comparisons allow
# (``host_floor <= budget < host_ceil``) or that the exact value was used; a later search with the same
# key and a budget in a recorded interval (or equal to a recorded exact budget) has the same outcome,
# so machines that share their GPUs but not their RAM share placement searches.

_SearchResult = tuple[int, int, int | None, "_Choice | None", tuple[str, ...]]  # floor, ceil, exact budget
_SEARCHES: dict[tuple[object, ...], list[_SearchResult]] = {}

memory._CLEARERS.append(_SEARCHES.clear)


def _search(setup: _Setup) -> tuple[_Choice | None, list[str]]:
    """The first strategy that fits (or None) and the reasons the faster ones did not (memoised: see above)."""
    o = setup.opts
    key = (
        setup.probe_sig,
        setup.budgets,
        setup.unified,
        setup.min_ctx,
        setup.max_ctx,
        setup.fixed_ctx,
        o.gpu_layers,
        o.n_cpu_moe,
    )
    budget = setup.host_budget
    known = _SEARCHES.get(key)
    if known is not None:
        for floor, ceil, exact, choice, reasons in known:
            if (floor <= budget < ceil) if exact is None else exact == budget:
                return choice, _reasons(setup, reasons)
    choice, found = _run_search(setup)
    if known is None:
        if len(_SEARCHES) > 16384:
            _SEARCHES.clear()
        known = _SEARCHES[key] = []
    exact = budget if setup.host_exact else None
    templates = tuple(found)
    known.append((setup.host_floor, setup.host_ceil, exact, choice, templates))
    return choice, _reasons(setup, templates)


def _run_search(setup: _Setup) -> tuple[_Choice | None, list[str]]:
    reasons: list[str] = []
    o = setup.opts
    if o.gpu_layers is not None or o.n_cpu_moe is not None:
        return _forced(setup, reasons), reasons
    state: dict[str, int] = {}
    tries: list[Callable[[_Setup, list[str], dict[str, int]], _Choice | None]] = []
    if setup.n_gpu:
        tries += [_try_gpu, _try_cpu_moe, _try_partial]
    tries.append(_try_cpu)
    for attempt in tries:
        choice = attempt(setup, reasons, state)
        if choice is not None:
            return choice, reasons
    if setup.opts.mmap:
        choice = _try_gpu_disk(setup, reasons, state) if setup.n_gpu else None
        if choice is None:
            choice = _try_cpu(setup, reasons, state, disk=True)
        if choice is not None:
            return choice, reasons
    return None, reasons


def _server_args(setup: _Setup, choice: _Choice | None, n_ctx: int) -> tuple[str, ...]:
    o = setup.opts
    layout = choice.layout if choice else Layout(n_gpu=setup.n_gpu)
    args = ["-c", str(n_ctx), "-np", str(setup.n_seq), "-ngl", str(layout.gpu_layers)]
    if layout.n_cpu_moe:
        args += ["--n-cpu-moe", str(layout.n_cpu_moe)]
    if layout.tensor_split and layout.gpu_layers > 0:
        args += ["-ts", ",".join(str(int(x)) if float(x).is_integer() else f"{x:g}" for x in layout.tensor_split)]
    args += ["-fa", "on" if setup.flash_attn else "off"]
    if o.cache_type_k != "f16":
        args += ["-ctk", o.cache_type_k]
    if o.cache_type_v != "f16":
        args += ["-ctv", o.cache_type_v]
    if o.batch != 2048:
        args += ["-b", str(o.batch)]
    if o.ubatch != 512:
        args += ["-ub", str(o.ubatch)]
    if not layout.mmap:
        args += ["--load-mode", "none"]  # this build's spelling of the older --no-mmap
    if not layout.cpu_repack and setup.n_gpu == 0:
        args.append("--no-repack")
    args += ["--fit", "off"]
    return tuple(args)


# GPU rows of the plan's device table per (GPU names, capacities, Breakdown): plans that share their GPUs
# and a placement share the (frozen) rows, built once.
_GPU_ROWS: dict[tuple[object, ...], tuple[Breakdown, tuple[DeviceUsage, ...]]] = {}
memory._CLEARERS.append(_GPU_ROWS.clear)


def _devices(setup: _Setup, b: Breakdown) -> tuple[DeviceUsage, ...]:
    hw = setup.hw
    key = (hw.gpu_names, hw.capacities, id(b))
    hit = _GPU_ROWS.get(key)
    if hit is None or hit[0] is not b:
        rows = tuple(
            [
                # DeviceUsage(name, kind, capacity, weights, kv, recurrent, compute, other)
                DeviceUsage(name, "gpu", cap, w, kv, rec, comp, other)
                for name, cap, w, kv, rec, comp, other in zip(  # noqa: B905 - one figure per GPU
                    hw.gpu_names, hw.capacities, b.gpu_weights, b.gpu_kv, b.gpu_recurrent, b.gpu_compute, b.gpu_other
                )
            ]
        )
        if len(_GPU_ROWS) > 16384:
            _GPU_ROWS.clear()
        hit = _GPU_ROWS[key] = (b, rows)
    host = DeviceUsage(
        "host",
        "host",
        setup.machine.host_ram_bytes,
        b.host_weights,
        b.host_kv,
        b.host_recurrent,
        b.host_compute,
        b.host_output,
    )
    return (*hit[1], host)


def _warnings(setup: _Setup, choice: _Choice | None, n_ctx: int) -> list[str]:
    spec = setup.spec
    declared = spec.hparams.n_ctx_train
    trained = spec.trained_context
    out: list[str] = []
    if declared >= _HUGE_TRAINED_CONTEXT:
        out.append(
            f"the GGUF declares a context length of {declared:,} tokens: llama-server's -c 0 would reserve KV "
            f"cache for all of them; the command line sets -c {n_ctx} explicitly"
        )
    if setup.opts.context is not None and trained and setup.opts.context > trained * setup.n_seq:
        out.append(f"context {setup.opts.context:,} exceeds the trained context ({trained:,} tokens per slot)")
    if setup.n_seq > 1:
        out.append(
            f"{setup.n_seq} parallel slots share -c {n_ctx}: each request gets up to {n_ctx // setup.n_seq:,} tokens"
        )
    if choice is None:
        return out
    if choice.strategy is Strategy.DISK and choice.layout.gpu_layers:
        out.append(
            "reading from disk: the weights kept on the host do not fit in RAM and are paged in from disk for "
            "every token - the disk bounds the speed"
        )
    elif choice.strategy is Strategy.DISK:
        out.append(
            "reading from disk: the weights do not fit in RAM and are paged in from disk for every token - "
            "expect seconds per token"
        )
    elif choice.strategy is Strategy.PARTIAL_OFFLOAD:
        out.append("partial offload: layers in host RAM run on the CPU and limit speed")
    elif choice.strategy is Strategy.CPU and setup.n_gpu:
        out.append("nothing fits on the GPU: the model runs on the CPU")
    if choice.strategy is Strategy.GPU_CPU_MOE:
        out.append("routed experts of the first layers run from host RAM: decode speed depends on RAM bandwidth")
    if not setup.fixed_ctx and n_ctx < setup.max_ctx and n_ctx < MIN_CONTEXT * setup.n_seq:
        out.append(f"only {n_ctx} tokens of context fit")
    return out


def make_plan(spec: ModelSpec, machine: Machine, options: Options | None = None) -> Plan:
    """Decide how llama.cpp runs ``spec`` on ``machine`` and predict every buffer it allocates."""
    opts = options or Options()
    setup = _setup(spec, machine, opts)
    choice, reasons = _search(setup)
    prof = setup.prof
    total_layers = prof.n_layer + 1
    if choice is None:
        n_ctx = setup.min_ctx
        layout = Layout(n_gpu=setup.n_gpu, gpu_layers=total_layers if setup.n_gpu else 0, mmap=opts.mmap)
        b = _evaluate(setup, n_ctx, layout)
        reasons.append("nothing fits: choose a smaller quantization, a shorter context or a larger machine")
    else:
        n_ctx, layout, b = choice.n_ctx, choice.layout, choice.breakdown
        if choice.strategy is not Strategy.GPU and setup.n_gpu and not reasons:
            reasons.append(f"placement forced by the options: {choice.strategy}")
    gpu_total = b.gpu_total
    experts_on_host = 0
    if prof.moe_layers:
        host_layers = max(prof.n_layer + 1 - layout.gpu_layers, 0) if setup.n_gpu else prof.n_layer
        cut = max(min(prof.n_layer, max(host_layers, layout.n_cpu_moe if layout.gpu_layers else 0)), 0)
        experts_on_host = _moe_layers_below(prof, cut)
    disk = choice is not None and choice.strategy is Strategy.DISK
    # every field of Plan, in order (see _new_plan)
    state: dict[str, Any] = {
        "model_id": spec.model_id,
        "model_name": spec.name,
        "quant": spec.ftype,
        "target_id": machine.id,
        "target_name": machine.name,
        "gpu_class": machine.gpu_class,
        "gguf_repo": spec.gguf_repo,
        "fits": choice is not None,
        "strategy": choice.strategy if choice else None,
        "reasons": tuple(reasons),
        "context": n_ctx,
        "parallel": setup.n_seq,
        "gpu_layers": b.gpu_layer_count if choice else 0,
        "total_layers": total_layers,
        "n_cpu_moe": layout.n_cpu_moe,
        "tensor_split": tuple(layout.tensor_split) if layout.gpu_layers else (),
        "flash_attention": setup.flash_attn,
        "cache_type_k": opts.cache_type_k,
        "cache_type_v": opts.cache_type_v,
        "batch": opts.batch,
        "ubatch": opts.ubatch,
        "backend": setup.backend,
        "model_bytes": spec.file_bytes or spec.tensor_bytes,
        "vram_total_bytes": setup.hw.vram_total_bytes,
        "vram_used_bytes": sum(gpu_total),
        "ram_total_bytes": machine.host_ram_bytes,
        "ram_required_bytes": _host_need(setup, b, disk=disk),
        "reading_from_disk": disk,
        "devices": _devices(setup, b),
        "llama_server_args": _server_args(setup, choice, n_ctx),
        "warnings": tuple(_warnings(setup, choice, n_ctx)),
        "trained_context": spec.trained_context,
        "experts_on_cpu_layers": experts_on_host,
        "moe_layers": prof.moe_layers,
        "unified_memory": machine.unified_memory,
        "decode_tok_s": None,
        "decode_tok_s_parallel": None,
        "prefill_tok_s": None,
        "ttft_s": None,
        "prompt_tokens": opts.prompt_tokens,
        "cost_per_mtok": None,
        "cost_per_mtok_parallel": None,
        "price_per_hour": None,
        "currency": "",
        "bottleneck": "",
        "extra": {
            "context_per_slot": n_ctx // setup.n_seq,
            "pipeline_parallel": b.pipeline_parallel,
            "gpu_margin_bytes": opts.gpu_margin_bytes,
            "host_reserved_bytes": opts.host_reserved_bytes,
        },
    }
    return _with_speed(_new_plan(state), spec, machine)


_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(Plan))
# Plan is a frozen dataclass with neither __post_init__ nor slots: its instance state is its __dict__
_PLAN_PLAIN = not hasattr(Plan, "__post_init__") and not hasattr(Plan, "__slots__")


def _new_plan(state: dict[str, Any]) -> Plan:
    """``Plan(**state)`` for a ``state`` naming every field, without the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` call per field): the dict becomes the instance's ``__dict__``. A changed Plan
    (a field added or renamed, a ``__post_init__``, slots) takes the regular constructor, which then says
    what is wrong."""
    if not _PLAN_PLAIN or state.keys() != _PLAN_FIELDS:
        return Plan(**state)  # pragma: no cover - a changed Plan
    plan = object.__new__(Plan)
    plan.__dict__.update(state)
    return plan


_MOE_COUNTS: dict[int, tuple[Profile, tuple[int, ...]]] = {}


def _moe_layers_below(prof: Profile, cut: int) -> int:
    """Layers below ``cut`` that hold routed experts (a prefix count, built once per profile)."""
    hit = _MOE_COUNTS.get(id(prof))
    if hit is None or hit[0] is not prof:
        e = prof.experts.host
        counts = [0]
        for il in range(prof.n_layer):
            counts.append(counts[-1] + (e[il + 1] > e[il]))
        if len(_MOE_COUNTS) > 256:
            _MOE_COUNTS.clear()
        hit = _MOE_COUNTS[id(prof)] = (prof, tuple(counts))
    return hit[1][max(min(cut, prof.n_layer), 0)]


_SPEED: list[object] = []  # the servefit.speed module, imported on first use (None when absent)


def _with_speed(plan: Plan, spec: ModelSpec, machine: Machine) -> Plan:
    if not _SPEED:
        try:
            from servefit import speed
        except ImportError:
            _SPEED.append(None)
        else:
            _SPEED.append(speed)
    estimate = getattr(_SPEED[0], "estimate", None)
    if estimate is None:
        return plan
    result = estimate(plan, spec, machine)
    return result if isinstance(result, Plan) else plan


def with_options(options: Options | None, **changes: object) -> Options:
    """A copy of ``options`` (or the defaults) with some fields changed."""
    return dataclasses.replace(options or Options(), **changes)  # type: ignore[arg-type]
