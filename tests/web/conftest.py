"""The website over the embedded catalog, served in-process through httpx.ASGITransport."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from servefit.plan import Strategy
from servefit.web.app import create_app
from servefit.web.data import Combination, SiteData

BASE_URL = "https://servefit.example"


def _site() -> SiteData:
    from servefit.web.catalog import site_data_from_catalog

    return site_data_from_catalog()


@pytest.fixture(scope="session")
def site() -> SiteData:
    return _site()


@pytest.fixture(scope="session")
def app(site: SiteData) -> Starlette:
    return create_app(site, base_url=BASE_URL)


@dataclass
class Client:
    """A synchronous face over an httpx.AsyncClient bound to the app through ASGITransport."""

    app: Starlette

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.get(path, **kwargs)  # type: ignore[arg-type]

        return asyncio.run(go())

    def get_many(self, paths: list[str]) -> list[httpx.Response]:
        async def go() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return [await client.get(p) for p in paths]

        return asyncio.run(go())


@pytest.fixture(scope="session")
def client(app: Starlette) -> Client:
    return Client(app)


def sample_combinations(site: SiteData, per_strategy: int = 4) -> list[Combination]:
    """A deterministic sample of deploy pages that covers every strategy the catalog produces
    (and plans that do not fit), every model, and multi-GPU, CPU-only and unified-memory targets."""
    chosen: list[Combination] = []
    seen_strategy: dict[str, int] = {}
    seen_models: set[str] = set()
    targets = site.targets
    picks = [t for i, t in enumerate(targets) if i % 23 == 0]
    picks += [t for t in targets if t.id == "cpu" or t.gpu_count > 2][:3]

    def want(c: Combination) -> None:
        if c not in chosen:
            chosen.append(c)

    # the reference case of the project, a CPU-only plan and a big MoE on a consumer GPU
    for model_id, quant, target_id in (
        ("nemotron-3-super-120b-a12b", "Q4_K_S", "scaleway/l4-2-24g"),
        ("qwen3-8b", "Q4_K_M", "cpu"),
        ("gpt-oss-120b", "MXFP4_MOE", "rtx-4090"),
    ):
        want(Combination(site.model(model_id), quant, site.target(target_id)))
    for model in site.models:
        quants = model.published_quants
        if not quants:
            continue
        for qi, quant in enumerate((quants[0], quants[len(quants) // 2], quants[-1])):
            for t in picks[qi::3]:
                combo = Combination(model, quant, t)
                plan = site.plan(model.id, quant, t.id)
                key = str(plan.strategy) if plan.fits else "no-fit"
                if seen_strategy.get(key, 0) < per_strategy or model.id not in seen_models:
                    seen_strategy[key] = seen_strategy.get(key, 0) + 1
                    seen_models.add(model.id)
                    want(combo)
    return chosen


def strategies_of(site: SiteData, combos: list[Combination]) -> set[Strategy | None]:
    return {site.plan(c.model.id, c.quant, c.target.id).strategy for c in combos}


@pytest.fixture(scope="session")
def sample(site: SiteData) -> list[Combination]:
    return sample_combinations(site)


def iter_paths(combos: list[Combination]) -> Iterator[str]:
    from servefit.web import urls

    for c in combos:
        yield urls.deploy_url(c.model.id, c.quant, c.target.id)
