"""The embedded catalog: models and hardware, loaded from the YAML/CSV files in ``data/``.

Each file is validated through pydantic at load; a load error names the file, the row and the
field (``CatalogError``). ``models.py`` serves models, ``servefit.hardware`` serves GPUs and machines.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from servefit.errors import CatalogError

__all__ = ["load_data_file"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_data_file(name: str) -> Any:
    """Parse ``servefit/catalog/data/<name>`` (YAML); a syntax error becomes a CatalogError."""
    try:
        text = resources.files("servefit.catalog").joinpath("data", name).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"catalog file {name}: cannot read ({exc})", path=name) from exc
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog file {name}: invalid YAML ({exc})", path=name) from exc
