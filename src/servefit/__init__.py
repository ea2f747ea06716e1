"""servefit: how llama.cpp would run a model on given hardware, how fast, at what cost, and how to deploy it.

The public surface is listed in ``__all__``. Names are loaded on first use so that importing the
package (and running ``servefit --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servefit.errors import (
        CatalogError,
        GGUFError,
        MissingSplitError,
        ModelError,
        NotFoundError,
        OptionsError,
        RemoteError,
        RenderError,
        ServefitError,
        SourceError,
        UnknownHardwareError,
        UnknownModelError,
        UnknownQuantError,
    )
    from servefit.gguf import read_model_spec
    from servefit.hardware import list_targets, resolve_target
    from servefit.machine import Backend, Device, Machine
    from servefit.model import Hparams, LayerInfo, ModelSpec, TensorInfo, TensorRole
    from servefit.plan import DeviceUsage, FlashAttn, Options, Plan, Strategy
    from servefit.planner import make_plan
    from servefit.resolve import resolve_model

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors
    "CatalogError": "servefit.errors",
    "GGUFError": "servefit.errors",
    "MissingSplitError": "servefit.errors",
    "ModelError": "servefit.errors",
    "NotFoundError": "servefit.errors",
    "OptionsError": "servefit.errors",
    "RemoteError": "servefit.errors",
    "RenderError": "servefit.errors",
    "ServefitError": "servefit.errors",
    "SourceError": "servefit.errors",
    "UnknownHardwareError": "servefit.errors",
    "UnknownModelError": "servefit.errors",
    "UnknownQuantError": "servefit.errors",
    # model, machine, plan types
    "Hparams": "servefit.model",
    "LayerInfo": "servefit.model",
    "ModelSpec": "servefit.model",
    "TensorInfo": "servefit.model",
    "TensorRole": "servefit.model",
    "Backend": "servefit.machine",
    "Device": "servefit.machine",
    "Machine": "servefit.machine",
    "DeviceUsage": "servefit.plan",
    "FlashAttn": "servefit.plan",
    "Options": "servefit.plan",
    "Plan": "servefit.plan",
    "Strategy": "servefit.plan",
    # the flow
    "read_model_spec": "servefit.gguf",
    "resolve_model": "servefit.resolve",
    "resolve_target": "servefit.hardware",
    "list_targets": "servefit.hardware",
    "make_plan": "servefit.planner",
}

__all__ = [
    "Backend",
    "CatalogError",
    "Device",
    "DeviceUsage",
    "FlashAttn",
    "GGUFError",
    "Hparams",
    "LayerInfo",
    "Machine",
    "MissingSplitError",
    "ModelError",
    "ModelSpec",
    "NotFoundError",
    "Options",
    "OptionsError",
    "Plan",
    "RemoteError",
    "RenderError",
    "ServefitError",
    "SourceError",
    "Strategy",
    "TensorInfo",
    "TensorRole",
    "UnknownHardwareError",
    "UnknownModelError",
    "UnknownQuantError",
    "__version__",
    "list_targets",
    "make_plan",
    "read_model_spec",
    "resolve_model",
    "resolve_target",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'servefit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
