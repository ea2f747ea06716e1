"""What the website shows, gathered once from the catalog and the planner, with plans cached.

:class:`SiteData` is the website's one window onto the rest of servefit. It holds the models (as
:class:`ModelInfo`, the catalog entry plus its quant ladder) and the hardware targets, and it makes
plans through the planner, caching each by its ids so that a page is planned once per process.
:meth:`SiteData.from_catalog` wires it to the embedded catalog; tests may build one from their own
objects through the constructor.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from servefit.errors import UnknownHardwareError, UnknownModelError, UnknownQuantError
from servefit.machine import Machine
from servefit.plan import Plan

__all__ = ["DEFAULT_QUANTS", "Combination", "ModelInfo", "QuantRow", "SiteData"]

# The quantization overviews show a model at: the first of these it publishes.
DEFAULT_QUANTS = ("Q4_K_M", "MXFP4_MOE", "Q4_K_S", "Q4_0", "Q5_K_M", "Q8_0")

PlanFn = Callable[[str, str, Machine, "int | None"], Plan]
"""make a plan: (model id, quantization, machine, context or None) -> Plan"""


@dataclass(frozen=True, slots=True)
class QuantRow:
    """One rung of a model's quant ladder."""

    name: str  # "Q4_K_M"
    file_bytes: int
    bits_per_weight: float
    published: bool  # a GGUF repository of the model publishes this file


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A catalog model as the website shows it."""

    id: str
    name: str
    vendor: str
    total_params: int
    active_params: int
    capabilities: tuple[str, ...]
    context_trained: int
    context_advertised: int
    license: str
    hf_repo: str
    gguf_repos: tuple[str, ...]
    description: str
    published_quants: tuple[str, ...]  # quantizations with a deploy page, in llama.cpp file-type order
    quants_verified: bool = True  # False: no repository lists its files; common quants are assumed

    @property
    def is_moe(self) -> bool:
        return 0 < self.active_params < self.total_params


@dataclass(frozen=True, slots=True)
class Combination:
    """One deploy page: a model, one of its published quantizations, a target."""

    model: ModelInfo
    quant: str
    target: Machine


def _suggest(query: str, choices: Sequence[str], n: int = 3) -> list[str]:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(query.lower(), list(lowered), n=n, cutoff=0.5)
    found = [lowered[c] for c in close]
    if len(found) < n:
        found += [c for c in choices if query.lower() in c.lower() and c not in found][: n - len(found)]
    return found


class SiteData:
    """Models, targets and cached plans for the website."""

    def __init__(
        self,
        *,
        models: Sequence[ModelInfo],
        targets: Sequence[Machine],
        plan_fn: PlanFn,
        values_fn: Callable[[Plan], str],
        deploy_commands_fn: Callable[[Plan, str], list[str]],
        resolve_machine_fn: Callable[[str], Machine] | None = None,
        ladder_fn: Callable[[str], Sequence[QuantRow]],
        search_fn: Callable[[str], list[str]] | None = None,
        cache_size: int = 65536,
    ) -> None:
        self.models = tuple(models)
        self.targets = tuple(targets)
        self._init_args = {
            "plan_fn": plan_fn,
            "values_fn": values_fn,
            "deploy_commands_fn": deploy_commands_fn,
            "ladder_fn": ladder_fn,
            "resolve_machine_fn": resolve_machine_fn,
            "search_fn": search_fn,
            "cache_size": cache_size,
        }
        self._models_by_id = {m.id.lower(): m for m in self.models}
        self._targets_by_id = {t.id.lower(): t for t in self.targets}
        self._plan_fn = plan_fn
        self._values_fn = values_fn
        self._deploy_commands_fn = deploy_commands_fn
        self._resolve_machine_fn = resolve_machine_fn
        self._search_fn = search_fn
        self._ladder_cached = functools.lru_cache(maxsize=None)(lambda model_id: tuple(ladder_fn(model_id)))
        self._plans: dict[tuple[str, str, str, int | None], Plan] = {}
        self._cache_size = cache_size
        self._machine_cached = functools.lru_cache(maxsize=1024)(self._machine_uncached)
        self._values_cached = functools.lru_cache(maxsize=cache_size)(self._values_uncached)

    def subset(self, models: Sequence[ModelInfo], targets: Sequence[Machine]) -> SiteData:
        """The same data restricted to some models and targets (a smaller, still complete site)."""
        return SiteData(models=models, targets=targets, **self._init_args)  # type: ignore[arg-type]

    # -- lookups ---------------------------------------------------------------------------------

    def model(self, model_id: str) -> ModelInfo:
        found = self._models_by_id.get(model_id.lower())
        if found is None:
            raise UnknownModelError(model_id, _suggest(model_id, [m.id for m in self.models]))
        return found

    def target(self, target_id: str) -> Machine:
        """A catalog target by id (case-insensitive)."""
        found = self._targets_by_id.get(target_id.lower())
        if found is None:
            raise UnknownHardwareError(target_id, _suggest(target_id, [t.id for t in self.targets]))
        return found

    def machine(self, spec: str) -> Machine:
        """A catalog target, or anything the hardware resolver understands (``2xl4``, ``rtx-4090``)."""
        return self._machine_cached(spec)

    def _machine_uncached(self, spec: str) -> Machine:
        try:
            return self.target(spec)
        except UnknownHardwareError:
            if self._resolve_machine_fn is None:
                raise
            return self._resolve_machine_fn(spec)

    def quant(self, model: ModelInfo, quant: str) -> str:
        """The canonical spelling of a published quantization of ``model``."""
        for name in model.published_quants:
            if name.lower() == quant.lower():
                return name
        raise UnknownQuantError(quant, _suggest(quant, list(model.published_quants)))

    def ladder(self, model: ModelInfo) -> tuple[QuantRow, ...]:
        """Every quantization llama.cpp can make of ``model``, with its exact size (cached)."""
        published = set(model.published_quants)
        return tuple(replace(row, published=row.name in published) for row in self._ladder_cached(model.id))

    def ladder_quant(self, model: ModelInfo, quant: str) -> str:
        """The canonical spelling of a quantization of ``model``: published, or anywhere on its ladder."""
        for name in model.published_quants:
            if name.lower() == quant.lower():
                return name
        ladder = self.ladder(model)
        for row in ladder:
            if row.name.lower() == quant.lower():
                return row.name
        raise UnknownQuantError(quant, _suggest(quant, [q.name for q in ladder]))

    def search(self, query: str) -> tuple[list[ModelInfo], list[Machine]]:
        """Models and targets matching ``query`` (every word must match somewhere)."""
        words = query.lower().split()
        if not words:
            return list(self.models), list(self.targets)
        models: list[ModelInfo] = []
        if self._search_fn is not None:
            for model_id in self._search_fn(query):
                found = self._models_by_id.get(model_id.lower())
                if found is not None and found not in models:
                    models.append(found)
        for m in self.models:
            hay = " ".join([m.id, m.name, m.vendor, *m.capabilities, m.hf_repo]).lower()
            if all(w in hay for w in words) and m not in models:
                models.append(m)
        targets: list[Machine] = []
        for t in self.targets:
            hay = " ".join([t.id, t.name, t.provider, t.gpu_class, *(d.name for d in t.devices)]).lower()
            if all(w in hay for w in words):
                targets.append(t)
        return models, targets

    def search_pairs(self, query: str, limit: int = 12) -> list[Combination]:
        """Deploy pages for a query that names a model and a target ("qwen3 8b l4"): every word
        matches the model or the target, and each matches at least one word. Default quantization."""
        words = query.lower().split()
        if len(words) < 2:
            return []
        model_hay = {m.id: " ".join([m.id, m.name, m.vendor]).lower() for m in self.models}
        target_hay = {
            t.id: " ".join([t.id, t.name, t.provider, t.gpu_class, *(d.name for d in t.devices)]).lower()
            for t in self.targets
        }
        models = [m for m in self.models if any(w in model_hay[m.id] for w in words) and m.published_quants]
        targets = [t for t in self.targets if any(w in target_hay[t.id] for w in words)]
        found: list[Combination] = []
        for m in models:
            rest = [w for w in words if w not in model_hay[m.id]]
            if not rest or len(rest) == len(words):
                continue
            quant = self.default_quant(m)
            if quant is None:
                continue
            for t in targets:
                if all(w in target_hay[t.id] for w in rest):
                    found.append(Combination(m, quant, t))
                    if len(found) >= limit:
                        return found
        return found

    # -- plans -----------------------------------------------------------------------------------

    def plan(self, model_id: str, quant: str, target_id: str, context: int | None = None) -> Plan:
        """The plan of a model at a quantization on a target (catalog id or resolver spec), cached."""
        model = self.model(model_id)
        canonical = self.ladder_quant(model, quant)
        machine = self.machine(target_id)
        key = (model.id, canonical, machine.id, context)
        found = self._plans.get(key)
        if found is None:
            found = self._plan_fn(model.id, canonical, machine, context)
            if len(self._plans) >= self._cache_size:
                self._plans.clear()
            self._plans[key] = found
        return found

    def remember(self, plans: Sequence[Plan]) -> None:
        """Add plans made elsewhere (by a worker process) to the cache, at the default context."""
        for plan in plans:
            if len(self._plans) >= self._cache_size:
                break
            self._plans[(plan.model_id, plan.quant, plan.target_id, None)] = plan

    def values(self, plan: Plan) -> str:
        """The Helm values text of a plan."""
        return self._values_cached(plan.model_id, plan.quant, plan.target_id)

    def _values_uncached(self, model_id: str, quant: str, target_id: str) -> str:
        return self._values_fn(self.plan(model_id, quant, target_id))

    def deploy_commands(self, plan: Plan, values_url: str) -> list[str]:
        return self._deploy_commands_fn(plan, values_url)

    # -- whole-catalog views ---------------------------------------------------------------------

    def combinations(self) -> Iterator[Combination]:
        """Every deploy page: each model × each published quantization × each target."""
        for model in self.models:
            for quant in model.published_quants:
                for target in self.targets:
                    yield Combination(model, quant, target)

    def count_combinations(self) -> int:
        return sum(len(m.published_quants) for m in self.models) * len(self.targets)

    def plans_for_quant(self, model: ModelInfo, quant: str) -> list[Plan]:
        """The plans of one model and quantization on every target, in catalog order."""
        return [self.plan(model.id, quant, t.id) for t in self.targets]

    def default_quant(self, model: ModelInfo) -> str | None:
        """The quantization a model is shown at in overviews: the most common one it publishes."""
        for q in DEFAULT_QUANTS:
            if q in model.published_quants:
                return q
        return model.published_quants[0] if model.published_quants else None

    def plans_on_target(self, target: Machine) -> list[Plan]:
        """For each model, the plan of its default quantization on ``target``."""
        out: list[Plan] = []
        for model in self.models:
            quant = self.default_quant(model)
            if quant is not None:
                out.append(self.plan(model.id, quant, target.id))
        return out
