"""The one exception tree of servefit.

Every error the package raises derives from :class:`ServefitError`; foreign errors
(``struct.error``, ``OSError``, HTTP errors, pydantic validation errors) are translated at the
boundary with ``raise ... from exc``. The CLI catches ``ServefitError`` once and prints its
message on one line; the web app maps ``NotFoundError`` to 404 and other errors to 400.

::

    ServefitError
    ├── SourceError              a model source cannot be opened or read (path, url)
    │   ├── RemoteError          an HTTP server or the Hub answered badly (url, status)
    │   └── MissingSplitError    a part of a split GGUF is missing (path)
    ├── GGUFError                a GGUF header is malformed (path, offset, key)
    ├── ModelError               a model cannot be understood (architecture, key)
    ├── CatalogError             a catalog data file is invalid (path, row, field)
    ├── NotFoundError            an id names nothing known (kind, query, suggestions)
    │   ├── UnknownModelError
    │   ├── UnknownHardwareError
    │   └── UnknownQuantError
    ├── OptionsError             a user option is invalid (option, value)
    └── RenderError              a deployment file cannot be produced (what)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CatalogError",
    "GGUFError",
    "MissingSplitError",
    "ModelError",
    "NotFoundError",
    "OptionsError",
    "RemoteError",
    "RenderError",
    "ServefitError",
    "SourceError",
    "UnknownHardwareError",
    "UnknownModelError",
    "UnknownQuantError",
]


class ServefitError(Exception):
    """Root of every error servefit raises; its message is one line a user can act on."""


class SourceError(ServefitError):
    """A model source (file, split set, URL, Hub reference) cannot be opened or read."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class RemoteError(SourceError):
    """An HTTP server or the Hugging Face Hub answered with an error or broke the protocol."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message, path=url)
        self.url = url
        self.status = status


class MissingSplitError(SourceError):
    """A part of a split GGUF (``*-0000K-of-0000N.gguf``) is missing."""


class GGUFError(ServefitError):
    """A GGUF header is malformed; carries where it went wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.key = key


class ModelError(ServefitError):
    """A model's metadata or configuration cannot be turned into a ModelSpec."""

    def __init__(self, message: str, *, architecture: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.architecture = architecture
        self.key = key


class CatalogError(ServefitError):
    """A catalog data file is invalid; names the file, the row and the field."""

    def __init__(
        self, message: str, *, path: str | None = None, row: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.row = row
        self.field = field


class NotFoundError(ServefitError):
    """An id names nothing known; carries the closest matches."""

    kind = "item"

    def __init__(self, query: str, suggestions: Sequence[str] = ()) -> None:
        self.query = query
        self.suggestions = tuple(suggestions)
        message = f"unknown {self.kind} {query!r}"
        if self.suggestions:
            quoted = [repr(s) for s in self.suggestions]
            alternatives = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
            message += f": did you mean {alternatives}?"
        super().__init__(message)


class UnknownModelError(NotFoundError):
    kind = "model"


class UnknownHardwareError(NotFoundError):
    kind = "hardware"


class UnknownQuantError(NotFoundError):
    kind = "quantization"


class OptionsError(ServefitError):
    """A user option is out of range or inconsistent."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class RenderError(ServefitError):
    """A deployment file or page cannot be produced from a plan."""
