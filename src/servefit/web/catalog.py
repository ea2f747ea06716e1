"""Wire :class:`~servefit.web.data.SiteData` to the embedded catalog, the planner and the renderers.

Which quantizations get a deploy page: those that a GGUF repository of the model lists (and that
llama.cpp's quantizer can make, ``servefit.quants.FILE_TYPES``). For a model whose repositories
list no files at all, the common quantizations in :data:`COMMON_QUANTS` are assumed and the pages
say so. Imports of the core modules are done here, lazily, so ``servefit --help`` stays fast.
"""

from __future__ import annotations

import functools
from typing import Any

from servefit.machine import Machine
from servefit.model import ModelSpec
from servefit.plan import Options, Plan
from servefit.web.data import ModelInfo, QuantRow, SiteData

__all__ = ["COMMON_QUANTS", "site_data_from_catalog"]

# What GGUF publishers (unsloth, bartowski, ggml-org, the vendors) ship for nearly every model.
COMMON_QUANTS = ("Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")


def _model_info(entry: Any, file_types: tuple[str, ...]) -> ModelInfo:
    listed = {str(q).upper() for repo in entry.gguf_repos for q in repo.quants}
    listed |= {str(q.name).upper() for q in getattr(entry, "published_quants", ())}
    verified = bool(listed)
    wanted = listed if verified else set(COMMON_QUANTS)
    if not entry.is_moe:
        wanted.discard("MXFP4_MOE")
    published = tuple(q for q in file_types if q.upper() in wanted)
    return ModelInfo(
        id=str(entry.id),
        name=str(entry.name),
        vendor=str(entry.vendor or ""),
        total_params=int(entry.total_params or 0),
        active_params=int(entry.active_params or entry.total_params or 0),
        capabilities=tuple(str(c) for c in (entry.capabilities or ())),
        context_trained=int(entry.context_trained or 0),
        context_advertised=int(entry.context_advertised or entry.context_trained or 0),
        license=str(entry.license or ""),
        hf_repo=str(entry.hf_repo or ""),
        gguf_repos=tuple(str(r.repo) for r in entry.gguf_repos),
        description=" ".join(str(entry.description or "").split()),
        published_quants=published,
        quants_verified=verified,
    )


def site_data_from_catalog() -> SiteData:
    """The website's data over the embedded model and hardware catalogs."""
    from servefit import hardware, inventory, planner, quants
    from servefit.catalog import models as catalog_models
    from servefit.render import deploy as render_deploy
    from servefit.render import values as render_values

    entries = {e.id: e for e in catalog_models.list_models()}
    infos = [_model_info(e, quants.FILE_TYPES) for e in entries.values()]
    published = {i.id: set(i.published_quants) for i in infos}

    def ladder(model_id: str) -> list[QuantRow]:
        rows = inventory.quant_ladder(entries[model_id].config_dict())
        return [
            QuantRow(q.name, int(q.file_bytes), float(q.bits_per_weight), q.name in published[model_id]) for q in rows
        ]

    @functools.lru_cache(maxsize=256)
    def spec(model_id: str, quant: str) -> ModelSpec:
        return catalog_models.model_spec(model_id, quant)

    def plan_fn(model_id: str, quant: str, machine: Machine, context: int | None) -> Plan:
        return planner.make_plan(spec(model_id, quant), machine, Options(context=context))

    def search_fn(query: str) -> list[str]:
        return [e.id for e in catalog_models.search_models(query)]

    return SiteData(
        models=infos,
        targets=hardware.list_targets(),
        plan_fn=plan_fn,
        values_fn=render_values.render_values,
        deploy_commands_fn=render_deploy.deploy_commands,
        ladder_fn=ladder,
        resolve_machine_fn=hardware.resolve_target,
        search_fn=search_fn,
    )
