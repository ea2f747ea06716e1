"""Static export: write the whole website to a folder that any static host can serve.

Every page becomes ``<address>/index.html`` (so ``/models/qwen3-8b`` is served from
``models/qwen3-8b/index.html``), every values file and plan JSON its own file at its address, plus
``404.html``, ``sitemap.xml``, ``robots.txt`` and the static assets. Deploy pages are the bulk:
one per model × published quantization × target. With ``jobs > 1`` the deploy pages are rendered
by forked worker processes, one (model, quantization) group at a time.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from servefit.errors import OptionsError, RenderError
from servefit.plan import Plan
from servefit.web import urls
from servefit.web.data import ModelInfo, SiteData
from servefit.web.pages import Pages

__all__ = ["MARKER", "BuildReport", "build_site", "limit_site", "remove_site"]

MARKER = ".servefit-site"

ProgressFn = Callable[[int, int], None]
"""progress(done, total): called as pages are written"""


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a static build wrote and how fast."""

    out: Path
    pages: int  # HTML pages (deploy pages included)
    deploy_pages: int
    values_files: int
    json_files: int
    bytes_written: int
    seconds: float

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Counts:
    pages: int = 0
    deploy_pages: int = 0
    values_files: int = 0
    json_files: int = 0
    bytes_written: int = 0

    def add(self, other: _Counts) -> None:
        self.pages += other.pages
        self.deploy_pages += other.deploy_pages
        self.values_files += other.values_files
        self.json_files += other.json_files
        self.bytes_written += other.bytes_written


class _Writer:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = str(out.resolve())
        self.counts = _Counts()
        self._made: set[Path] = set()

    def file(self, address: str, body: str) -> None:
        """Write ``body`` at ``address`` (a site path; ``/x/`` or ``/x`` pages get ``index.html``)."""
        rel = address.lstrip("/")
        path = self.out / rel
        if not os.path.abspath(path).startswith(self.root + os.sep):
            raise OptionsError(f"refusing to write outside the output folder: {address!r}", option="out")
        parent = path.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        data = body.encode("utf-8")
        path.write_bytes(data)
        self.counts.bytes_written += len(data)

    def page(self, address: str, body: str) -> None:
        self.file(address.rstrip("/") + "/index.html", body)
        self.counts.pages += 1


def _groups(data: SiteData) -> list[tuple[str, str]]:
    return [(m.id, q) for m in data.models for q in m.published_quants]


def _write_group(pages: Pages, writer: _Writer, model_id: str, quant: str) -> int:
    """Deploy pages, plan JSON and values files of one (model, quantization) on every target, and
    the quantization's page (which lists those plans)."""
    n = 0
    for target in pages.data.targets:
        writer.page(urls.deploy_url(model_id, quant, target.id), pages.deploy(model_id, quant, target.id))
        writer.counts.deploy_pages += 1
        writer.file(urls.api_plan_url(model_id, quant, target.id), pages.api_plan(model_id, quant, target.id, None))
        writer.counts.json_files += 1
        plan = pages.data.plan(model_id, quant, target.id)
        if plan.fits:
            try:
                body = pages.values(model_id, quant, target.id)
            except RenderError:
                pass
            else:
                writer.file(urls.values_url(model_id, quant, target.id), body)
                writer.counts.values_files += 1
        n += 1
    writer.page(f"{urls.model_url(model_id)}/{urls.quant_slug(quant)}", pages.quant(model_id, quant))
    return n + 1


def _summary_plans(pages: Pages, model_id: str, quant: str) -> list[Plan]:
    """The plans of a group that the pages written by the parent process read: every target at the
    model's default quantization (hardware pages), the reference targets otherwise (model pages)."""
    data = pages.data
    model = data.model(model_id)
    if data.default_quant(model) == quant:
        return [data.plan(model_id, quant, t.id) for t in data.targets]
    return [data.plan(model_id, quant, t.id) for t in pages.reference_targets()]


def _warm(pages: Pages, job: tuple[str, str]) -> None:
    """Before forking: compile every template and render the first deploy page once, so that the
    workers inherit compiled templates and loaded reference data (and that page) instead of each
    loading them again."""
    pages.precompile()
    if pages.data.targets:
        model_id, quant = job
        target_id = pages.data.targets[0].id
        pages.deploy(model_id, quant, target_id)
        pages.api_plan(model_id, quant, target_id, None)


# Worker state of forked processes (set before the pool forks; never pickled).
_WORKER: tuple[Pages, Path] | None = None


def _work(job: tuple[str, str]) -> tuple[int, _Counts, list[Plan]]:
    assert _WORKER is not None
    pages, out = _WORKER
    writer = _Writer(out)
    model_id, quant = job
    n = _write_group(pages, writer, model_id, quant)
    return n, writer.counts, _summary_plans(pages, model_id, quant)


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OptionsError(f"{out}: exists and is not a folder", option="out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise OptionsError(
            f"{out}: folder is not empty and holds no earlier servefit site; choose an empty or new folder",
            option="out",
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("servefit static site\n", encoding="utf-8")


def _static_assets(writer: _Writer) -> None:
    static = resources.files("servefit.web").joinpath("static")
    for entry in static.iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            writer.file(f"/static/{entry.name}", entry.read_text(encoding="utf-8"))


def limit_site(data: SiteData, limit: int) -> SiteData:
    """A smaller but complete site of about ``limit`` deploy pages (at least one): the first
    (model, quantization) pairs of the catalog, each on as many targets (in catalog order) as fit.
    Few pairs on many targets keeps the build representative: each model is read once and planned
    on many machines, as in a full build."""
    n_targets = len(data.targets)
    if limit >= data.count_combinations():
        return data
    wanted_pairs = max(1, -(-limit // n_targets))
    models: list[ModelInfo] = []
    pairs = 0
    for m in data.models:
        if pairs >= wanted_pairs:
            break
        if not m.published_quants:
            continue
        take = m.published_quants[: wanted_pairs - pairs]
        models.append(m if len(take) == len(m.published_quants) else replace(m, published_quants=take))
        pairs += len(take)
    return data.subset(models, data.targets[: max(1, limit // max(pairs, 1))])


def build_site(
    out: Path,
    *,
    data: SiteData | None = None,
    base_url: str = "http://127.0.0.1:8000",
    limit: int | None = None,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> BuildReport:
    """Write the static site to ``out``; ``limit`` builds a smaller complete site of at most that
    many deploy pages (:func:`limit_site`), None the whole catalog."""
    global _WORKER
    if limit is not None and limit < 0:
        raise OptionsError(f"--limit must be 0 or more, not {limit}", option="limit")
    if jobs < 1:
        raise OptionsError(f"--jobs must be 1 or more, not {jobs}", option="jobs")
    started = time.perf_counter()
    if data is None:
        from servefit.web.catalog import site_data_from_catalog

        data = site_data_from_catalog()
    if limit is not None:
        data = limit_site(data, limit)
    pages = Pages(data, base_url=base_url)
    _prepare(out)
    writer = _Writer(out)
    jobs_list = _groups(data)
    total_deploy = data.count_combinations()
    fixed = ["/", "/search", "/models", "/hardware"]
    fixed += [urls.model_url(m.id) for m in data.models]
    fixed += [f"{urls.model_url(m)}/{urls.quant_slug(q)}" for m, q in _groups(data)]
    fixed += [urls.hardware_url(t.id) for t in data.targets]
    total = len(fixed) + total_deploy
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    tick(0)
    # Deploy pages first: the plans they compute warm the caches the summary pages read.
    if jobs > 1 and len(jobs_list) > 1:
        _warm(pages, jobs_list[0])
        _WORKER = (pages, out)
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(processes=jobs) as pool:
                for n, counts, plans in pool.imap_unordered(_work, jobs_list):
                    writer.counts.add(counts)
                    data.remember(plans)
                    tick(n)
        finally:
            _WORKER = None
    else:
        for job in jobs_list:
            tick(_write_group(pages, writer, *job))
    writer.page("/", pages.home())
    writer.page("/search", pages.search_all())
    writer.page("/models", pages.models_index())
    writer.page("/hardware", pages.hardware_index())
    tick(4)
    for m in data.models:
        writer.page(urls.model_url(m.id), pages.model(m.id))
        tick(1)
    for t in data.targets:
        writer.page(urls.hardware_url(t.id), pages.hardware(t.id))
        tick(1)
    writer.file("/404.html", pages.not_found("There is no page at this address.", []))
    writer.file("/sitemap.xml", pages.sitemap_index())
    writer.file("/sitemaps/pages.xml", pages.sitemap_pages())
    for m in data.models:
        if m.published_quants:
            writer.file(f"/sitemaps/{m.id}.xml", pages.sitemap_model(m.id))
    writer.file("/robots.txt", f"User-agent: *\nAllow: /\nSitemap: {pages.base_url}/sitemap.xml\n")
    _static_assets(writer)
    c = writer.counts
    return BuildReport(
        out=out,
        pages=c.pages,
        deploy_pages=c.deploy_pages,
        values_files=c.values_files,
        json_files=c.json_files,
        bytes_written=c.bytes_written,
        seconds=time.perf_counter() - started,
    )


def remove_site(out: Path) -> None:
    """Delete a folder written by :func:`build_site` (refuses any other folder)."""
    if not (out / MARKER).exists():
        raise OptionsError(f"{out}: not a servefit site (no {MARKER})", option="out")
    shutil.rmtree(out)
