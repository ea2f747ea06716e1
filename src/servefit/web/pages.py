"""Render every page of the website to a string: the one place that turns plans into markup.

:class:`Pages` is shared by the live app (``app.py``) and the static export (``export.py``): both
ask it for the same page by the same ids and get the same bytes. Rendered pages are cached by
their ids, so a page is planned and rendered once per process.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

from servefit.errors import RenderError
from servefit.machine import Machine
from servefit.plan import Plan, Strategy
from servefit.web import fmt, text, urls
from servefit.web.data import Combination, ModelInfo, SiteData
from servefit.web.jsonfmt import dumps_indented
from servefit.web.svg import SEGMENTS, memory_svg

__all__ = ["Pages", "Suggestion"]

# Hardware the model pages compare quantizations on: consumer, datacenter single and multi-GPU,
# unified memory, CPU. Ids missing from the catalog are skipped.
REFERENCE_TARGETS = (
    "rtx-4090",
    "nvidia-l4-24gb",
    "nvidia-l40s-48gb",
    "nvidia-h100-sxm-80gb",
    "nvidia-h100-sxm-160gb",
    "nvidia-h100-sxm-640gb",
    "mac-studio-m3-ultra-512gb",
    "cpu",
)
FEATURED_MODELS = (
    "qwen3-8b",
    "gpt-oss-20b",
    "gpt-oss-120b",
    "qwen3-30b-a3b-instruct-2507",
    "gemma-3-27b-it",
    "llama-3.3-70b-instruct",
    "nemotron-3-super-120b-a12b",
    "deepseek-r1",
)


@dataclass(frozen=True, slots=True)
class Suggestion:
    label: str
    href: str


def short_label(target: Machine) -> str:
    """A column-sized name of a target: ``1× RTX 4090 24 GiB``, ``8× H100 SXM5 80GB``, ``CPU only``."""
    if not target.devices:
        return "CPU only"
    name = target.devices[0].name
    for prefix in ("NVIDIA ", "GeForce ", "AMD ", "Radeon "):
        name = name.removeprefix(prefix)
    size = "" if re.search(r"\d\s?GB", name) else f" {round(target.devices[0].memory_bytes / 2**30):,} GiB"
    if target.unified_memory:
        return f"{name} {round(target.host_ram_bytes / 2**30):,} GiB"
    return f"{target.gpu_count}× {name}{size}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("servefit.web", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        gb=fmt.fmt_gb,
        gib=fmt.fmt_gib,
        count=fmt.fmt_count,
        params=fmt.fmt_params,
        tok_s=fmt.fmt_tok_s,
        seconds=fmt.fmt_seconds,
        money=fmt.fmt_money,
        yesno=fmt.fmt_bool,
        strategy_label=text.strategy_label,
        verdict=text.verdict,
        short_verdict=text.short_verdict,
    )
    env.globals.update(
        model_url=urls.model_url,
        hardware_url=urls.hardware_url,
        deploy_url=urls.deploy_url,
        quant_url=lambda m, q: f"{urls.model_url(m)}/{urls.quant_slug(q)}",
        quant_slug=urls.quant_slug,
    )
    return env


def _static_version() -> str:
    """A short fingerprint of the static assets, appended to their addresses to bust caches."""
    digest = hashlib.sha256()
    for name in ("style.css", "app.js"):
        digest.update(resources.files("servefit.web").joinpath(f"static/{name}").read_bytes())
    return digest.hexdigest()[:10]


class Pages:
    """Every page of the site, rendered from a :class:`SiteData` and cached by ids."""

    def __init__(self, data: SiteData, *, base_url: str = "http://127.0.0.1:8000") -> None:
        self.data = data
        self.base_url = base_url.rstrip("/")
        self.env = _environment()
        self.env.globals["static_version"] = _static_version()
        self.env.globals["site_base_url"] = self.base_url
        self.updated = dt.date.today().isoformat()
        self.deploy = functools.lru_cache(maxsize=4096)(self._deploy)
        self.values = functools.lru_cache(maxsize=4096)(self._values)
        self.model = functools.lru_cache(maxsize=512)(self._model)
        self.quant = functools.lru_cache(maxsize=2048)(self._quant)
        self.hardware = functools.lru_cache(maxsize=1024)(self._hardware)
        self.api_plan = functools.lru_cache(maxsize=4096)(self._api_plan)
        self.home = functools.cache(self._home)
        self.models_index = functools.cache(self._models_index)
        self.hardware_index = functools.cache(self._hardware_index)
        self.search_all = functools.cache(lambda: self.search(""))
        self.sitemap_for = functools.lru_cache(maxsize=64)(self.sitemap_model)
        self._reference_targets: tuple[Machine, ...] | None = None

    def precompile(self) -> None:
        """Compile every page template now (forked workers then share the compiled code)."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(updated=self.updated, **context)

    # -- shared pieces ---------------------------------------------------------------------------

    def _values(self, model_id: str, quant: str, target_id: str) -> str:
        """The values text served at ``/values/{model}/{quant}/{target}.yaml`` (ids canonical)."""
        return self.data.values(self.data.plan(model_id, quant, target_id))

    def _api_plan(self, model_id: str, quant: str, target_id: str, context: int | None) -> str:
        plan = self.data.plan(model_id, quant, target_id, context)
        return dumps_indented(plan.to_dict()) + "\n"

    # -- pages -----------------------------------------------------------------------------------

    def _home(self) -> str:
        featured = [m for m in self.data.models if m.id in FEATURED_MODELS and m.published_quants]
        featured.sort(key=lambda m: FEATURED_MODELS.index(m.id))
        popular: list[Plan] = []
        refs = self.reference_targets()
        for model in featured:
            quant = self.data.default_quant(model) or model.published_quants[0]
            for target in refs:
                plan = self.data.plan(model.id, quant, target.id)
                if plan.fits and plan.strategy is Strategy.GPU:
                    popular.append(plan)
                    break
        return self.render(
            "index.html",
            models=self.data.models,
            targets=self.data.targets,
            popular=popular,
            page_count=self.data.count_combinations(),
        )

    def search(self, query: str) -> str:
        models, targets = self.data.search(query)
        pairs = self.data.search_pairs(query)
        return self.render("search.html", query=query, models=models, targets=targets, pairs=pairs)

    def _models_index(self) -> str:
        return self.render("models.html", models=self.data.models)

    def reference_targets(self) -> list[Machine]:
        """The few targets the model pages compare every quantization on (those the catalog has)."""
        if self._reference_targets is None:
            # Direct lookups: a missing id is skipped, without the suggestions an error would compute.
            by_id = {t.id.lower(): t for t in self.data.targets}
            self._reference_targets = tuple(by_id[t] for t in REFERENCE_TARGETS if t in by_id)
        return list(self._reference_targets)

    def _model(self, model_id: str) -> str:
        model = self.data.model(model_id)
        refs = self.reference_targets()
        rows: list[dict[str, Any]] = []
        for q in sorted(self.data.ladder(model), key=lambda row: row.file_bytes):
            plans = [self.data.plan(model.id, q.name, t.id) for t in refs] if q.published else []
            rows.append({"quant": q, "plans": plans})
        labels = [short_label(t) for t in refs]
        return self.render("model.html", model=model, rows=rows, refs=list(zip(refs, labels, strict=True)))

    def _quant(self, model_id: str, quant: str) -> str:
        model = self.data.model(model_id)
        canonical = self.data.quant(model, quant)
        plans = self.data.plans_for_quant(model, canonical)
        return self.render("quant.html", model=model, quant=canonical, model_bytes=plans[0].model_bytes, plans=plans)

    def _hardware_index(self) -> str:
        groups: dict[str, list[Machine]] = {}
        for t in self.data.targets:
            groups.setdefault(t.provider or ("GPU classes" if t.gpu_class == t.id else "Other"), []).append(t)
        return self.render("hardware_list.html", groups=groups, targets=self.data.targets)

    def _hardware(self, target_id: str) -> str:
        target = self.data.target(target_id)
        plans = self.data.plans_on_target(target)
        models = {m.id: m for m in self.data.models}
        return self.render("hardware.html", target=target, plans=plans, models=models)

    def _deploy(self, model_id: str, quant: str, target_id: str) -> str:
        model = self.data.model(model_id)
        canonical = self.data.quant(model, quant)
        target = self.data.target(target_id)
        plan = self.data.plan(model.id, canonical, target.id)
        values_path = urls.values_url(model.id, canonical, target.id)
        values_text = ""
        commands: list[str] = []
        deploy_error = ""
        if plan.fits:
            try:
                values_text = self.values(model.id, canonical, target.id)
                commands = self.data.deploy_commands(plan, self.base_url + values_path)
            except RenderError as exc:
                deploy_error = str(exc)
        command = next((c for c in commands if c.lstrip().startswith("helmfile")), commands[-1] if commands else "")
        prerequisites = [c for c in commands if c != command]
        faqs = text.faq(plan, prerequisites, command)
        faq_ld = {
            "@context": "https://schema.org",
            "@type": "FAQPage",
            "mainEntity": [
                {"@type": "Question", "name": f.question, "acceptedAnswer": {"@type": "Answer", "text": f.answer}}
                for f in faqs
            ],
        }
        others = [q for q in model.published_quants if q != canonical]
        return self.render(
            "deploy.html",
            model=model,
            target=target,
            plan=plan,
            headline=text.headline(plan),
            fit_sentence=text.fit_sentence(plan),
            svg=memory_svg(plan),
            segments=SEGMENTS,
            prerequisites=prerequisites,
            command=command,
            commands=commands,
            values_path=values_path,
            values_text=values_text,
            deploy_error=deploy_error,
            faqs=faqs,
            faq_json=json.dumps(faq_ld, ensure_ascii=False).replace("</", "<\\/"),
            other_quants=others,
            api_path=urls.api_plan_url(model.id, canonical, target.id),
        )

    def not_found(self, message: str, suggestions: Sequence[Suggestion]) -> str:
        return self.render("error.html", status=404, title="Not found", message=message, suggestions=suggestions)

    def bad_request(self, message: str) -> str:
        return self.render("error.html", status=400, title="Bad request", message=message, suggestions=[])

    def server_error(self) -> str:
        return self.render(
            "error.html", status=500, title="Server error", message="Something went wrong on our side.", suggestions=[]
        )

    # -- site map --------------------------------------------------------------------------------

    def summary_paths(self) -> list[str]:
        """Every page address except the deploy pages."""
        paths = ["/", "/search", "/models", "/hardware"]
        paths += [urls.model_url(m.id) for m in self.data.models]
        paths += [f"{urls.model_url(m.id)}/{urls.quant_slug(q)}" for m in self.data.models for q in m.published_quants]
        paths += [urls.hardware_url(t.id) for t in self.data.targets]
        return paths

    def deploy_paths(self, model: ModelInfo) -> list[str]:
        return [urls.deploy_url(model.id, q, t.id) for q in model.published_quants for t in self.data.targets]

    def _urlset(self, paths: Sequence[str]) -> str:
        body = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
        ]
        body += [f"<url><loc>{self.base_url}{p}</loc><lastmod>{self.updated}</lastmod></url>" for p in paths]
        body.append("</urlset>")
        return "\n".join(body) + "\n"

    def sitemap_index(self) -> str:
        """``/sitemap.xml``: an index of ``/sitemaps/pages.xml`` and one site map per model (each
        well under the 50,000 addresses a site map may hold)."""
        maps = ["/sitemaps/pages.xml"] + [f"/sitemaps/{m.id}.xml" for m in self.data.models if m.published_quants]
        body = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
        ]
        body += [f"<sitemap><loc>{self.base_url}{p}</loc><lastmod>{self.updated}</lastmod></sitemap>" for p in maps]
        body.append("</sitemapindex>")
        return "\n".join(body) + "\n"

    def sitemap_pages(self) -> str:
        return self._urlset(self.summary_paths())

    def sitemap_model(self, model_id: str) -> str:
        return self._urlset(self.deploy_paths(self.data.model(model_id)))

    def combination_of(self, combo: Combination) -> Plan:
        return self.data.plan(combo.model.id, combo.quant, combo.target.id)
