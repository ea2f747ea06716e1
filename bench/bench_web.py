"""Website benchmarks: static build throughput and live-server latency under concurrency.

    python bench/bench_web.py [--limit 1200] [--jobs N] [--requests 3000] [--concurrency 50]

1. Static build: ``build_site`` of a smaller complete site (``--limit`` deploy pages) into a
   temporary folder, cold (every plan, values file and page computed), then the same pages
   rendered again from warm plans (the website's own rendering rate). Goal: 200 pages/s or more.
2. Live server: ``servefit web`` in a subprocess on 127.0.0.1, warmed, then ``--requests``
   requests over ``--concurrency`` connections from an httpx async client (bounded by count and
   time). Goal: p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the build's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def bench_static(limit: int, jobs: int) -> dict[str, float]:
    from servefit.errors import RenderError
    from servefit.web.catalog import site_data_from_catalog
    from servefit.web.export import build_site, limit_site
    from servefit.web.pages import Pages

    site = site_data_from_catalog()
    total_combinations = site.count_combinations()
    cpu0 = _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        report = build_site(Path(tmp) / "site", data=site, limit=limit, jobs=jobs)
        cpu = _cpu_seconds() - cpu0  # before the folder is deleted
    print(
        f"static build (cold, {jobs} job(s)): {report.pages:,} pages ({report.deploy_pages:,} deploy pages), "
        f"{report.values_files:,} values files, {report.json_files:,} plan JSON, "
        f"{report.bytes_written / 1e6:,.1f} MB in {report.seconds:.1f} s = {report.pages_per_s:,.0f} pages/s"
    )
    # On a shared machine the wall-clock rate depends on the other load; CPU time per page does not.
    print(
        f"  CPU time (user + system, all processes): {cpu:.1f} s = {1000 * cpu / max(report.pages, 1):.2f} ms per page "
        f"= {report.pages / cpu if cpu else 0.0:,.0f} pages per CPU-second (load average now {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores)"
    )
    # Where the time goes, in one process: plans and values computed again (a fresh subset has
    # empty caches), then the pages rendered again from those warm plans and values.
    small = limit_site(site, limit)
    combos = list(small.combinations())
    t0 = time.perf_counter()
    for c in combos:
        small.plan(c.model.id, c.quant, c.target.id)
    t_plan = time.perf_counter() - t0
    pages = Pages(small)
    t0 = time.perf_counter()
    for c in combos:
        plan = small.plan(c.model.id, c.quant, c.target.id)
        if plan.fits:
            with contextlib.suppress(RenderError):  # a plan without a container image (Apple Metal)
                pages.values(c.model.id, c.quant, c.target.id)
    t_values = time.perf_counter() - t0
    pages = Pages(small)  # fresh page caches; plans and values stay warm in `small`
    t0 = time.perf_counter()
    for c in combos:
        pages.deploy(c.model.id, c.quant, c.target.id)
        pages.api_plan(c.model.id, c.quant, c.target.id, None)
    t_render = time.perf_counter() - t0
    n = len(combos)
    render_rate = n / t_render if t_render else 0.0
    print(
        f"  per deploy page, one process: plan {1000 * t_plan / n:.1f} ms (servefit.planner + speed), "
        f"values {1000 * t_values / n:.1f} ms (servefit.render.values), page + JSON render {1000 * t_render / n:.2f} ms"
    )
    print(f"static render only (plans and values warm, 1 process): {render_rate:,.0f} pages/s")
    print(f"full catalog: {total_combinations:,} deploy pages")
    return {"pages_per_s": report.pages_per_s, "render_pages_per_s": render_rate}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(base: str, paths: list[str], requests: int, concurrency: int, max_seconds: float) -> list[float]:
    """``concurrency`` keep-alive connections, each its own httpx.AsyncClient (one shared pool of 50
    connections serialises on the pool's lock and measures the pool rather than the server). The
    clients are built and their connections opened before the clock starts: building a client
    loads a CA bundle, which is not what this measures."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    clients = [
        httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=1), timeout=30) for _ in range(concurrency)
    ]
    try:
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        deadline = time.perf_counter() + max_seconds

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                r = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    if errors:
        print(f"  {errors} responses were not 200")
    return latencies


async def _load_raw(port: int, paths: list[str], requests: int, concurrency: int) -> list[float]:
    """The same load from a minimal HTTP/1.1 keep-alive client on raw sockets: what the server
    itself takes, without an HTTP library's own time in the figures."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                t0 = time.perf_counter()
                writer.write(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _load_process(args: tuple[str, list[str], int, int, float]) -> list[float]:
    base, paths, requests, concurrency, max_seconds = args
    return asyncio.run(_load(base, paths, requests, concurrency, max_seconds))


def _load_processes(
    base: str, paths: list[str], requests: int, concurrency: int, max_seconds: float, procs: int
) -> list[float]:
    """The httpx load split over ``procs`` client processes (``concurrency`` connections in all)."""
    if procs <= 1:
        return asyncio.run(_load(base, paths, requests, concurrency, max_seconds))
    shares = [
        (
            base,
            paths[i::procs] or paths,
            requests // procs,
            concurrency // procs + (i < concurrency % procs),
            max_seconds,
        )
        for i in range(procs)
    ]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        return [x for part in pool.map(_load_process, shares) for x in part]


def _summary(label: str, lat: list[float], seconds: float, concurrency: int) -> dict[str, float]:
    ms = [1000 * x for x in lat]
    result = {
        "requests": float(len(ms)),
        "p50_ms": _percentile(ms, 50),
        "p90_ms": _percentile(ms, 90),
        "p99_ms": _percentile(ms, 99),
        "max_ms": max(ms),
        "req_per_s": len(ms) / seconds if seconds else 0.0,
    }
    print(
        f"{label}, {concurrency} concurrent connections, {len(ms):,} requests: p50 {result['p50_ms']:.1f} ms, "
        f"p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms, "
        f"{result['req_per_s']:,.0f} req/s (mean {statistics.fmean(ms):.1f} ms)"
    )
    return result


def bench_live(requests: int, concurrency: int, max_seconds: float, client_procs: int = 1) -> dict[str, float]:
    from servefit.web import urls
    from servefit.web.catalog import site_data_from_catalog

    site = site_data_from_catalog()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "servefit", "web", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("servefit web did not start")
            time.sleep(0.2)
        model = site.model("qwen3-8b")
        paths = ["/", "/models", "/hardware", f"/models/{model.id}", f"/models/{model.id}/q4_k_m"]
        for t in site.targets[:60]:
            paths.append(urls.deploy_url(model.id, "Q4_K_M", t.id))
            paths.append(f"/api/plan?model={model.id}&quant=Q4_K_M&target={t.id}")
        paths.append(urls.values_url(model.id, "Q4_K_M", "nvidia-l4-24gb"))
        paths.append("/hardware/scaleway/l4-2-24g")
        t0 = time.perf_counter()
        for p in paths:  # warm: every page planned and rendered once
            httpx.get(base + p, timeout=120)
        print(f"live server: warmed {len(paths)} addresses in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        lat = _load_processes(base, paths, requests, concurrency, max_seconds, client_procs)
        label = f"live latency, httpx async client ({client_procs} process{'es' if client_procs > 1 else ''})"
        result = _summary(label, lat, time.perf_counter() - t0, concurrency)
        t0 = time.perf_counter()
        raw = asyncio.run(_load_raw(port, paths, requests, concurrency))
        raw_result = _summary("live latency, raw keep-alive client", raw, time.perf_counter() - t0, concurrency)
        result["server_p99_ms"] = raw_result["p99_ms"]
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    """``argv[0]`` is the script (as ``python -m bench`` passes it); options follow."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1200, help="deploy pages in the static build")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--client-procs", type=int, default=1, help="processes sharing the httpx load")
    parser.add_argument("--skip-static", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args((argv if argv is not None else sys.argv)[1:])
    if not args.skip_static:
        static = bench_static(args.limit, args.jobs)
        cold, warm = static["pages_per_s"], static["render_pages_per_s"]
        print(f"GOAL static >= 200 pages/s: cold build {cold:,.0f}, render only {warm:,.0f}")
    if not args.skip_live:
        live = bench_live(args.requests, args.concurrency, args.max_seconds, args.client_procs)
        print(f"GOAL live p99 < 50 ms: {live['p99_ms']:.1f} ms (httpx), {live['server_p99_ms']:.1f} ms (raw client)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
