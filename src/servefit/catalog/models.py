"""The model catalog: ``data/models.yaml`` validated into frozen :class:`ModelEntry` rows.

Each row is one open model with a GGUF release: who makes it, its size, its context, its license,
where its GGUF files are published, and the hyperparameters of its Hugging Face ``config.json``
(the ``config`` mapping, with the very keys of the real file). Every figure names its source in the
row's ``sources`` mapping (``field -> URL or repo@commit path``); ``config.<key>`` overrides the
source of one config field. The file is checked through pydantic once, at first use; an invalid
row becomes a :class:`~servefit.errors.CatalogError` naming the file, the row (model id) and the
field.

Quantized sizes are not stored: ``model_spec`` and ``quant_ladder`` predict them from the config
(``servefit.inventory``). Only sizes of quants that no rule predicts (dynamic "UD" quants and the
like) are stored, in ``published_quants``, each with its source.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from servefit.catalog import load_data_file
from servefit.errors import CatalogError, SourceError, UnknownModelError, UnknownQuantError

if TYPE_CHECKING:
    from servefit.model import ModelSpec

__all__ = [
    "CAPABILITIES",
    "GgufRepo",
    "LadderRung",
    "ModelEntry",
    "PublishedQuant",
    "available_quants",
    "best_gguf_repo",
    "config_ladder",
    "get_model",
    "is_config_path",
    "list_models",
    "load_models",
    "model_ladder",
    "model_spec",
    "parse_models",
    "publication_warning",
    "read_config_json",
    "search_models",
]

MODELS_FILE = "models.yaml"

Capability = Literal["code", "multilingual", "thinking", "tool_calls", "vision"]
CAPABILITIES: tuple[str, ...] = ("code", "multilingual", "thinking", "tool_calls", "vision")

# Fields of a row whose value is a figure and so needs an entry in ``sources``.
_SOURCED_FIELDS = (
    "total_params",
    "active_params",
    "context_trained",
    "context_advertised",
    "license",
    "config",
    "capabilities",
)

_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$"
_REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
_QUANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Id = Annotated[str, StringConstraints(pattern=_ID_PATTERN, max_length=80)]
_Repo = Annotated[str, StringConstraints(pattern=_REPO_PATTERN)]
_Quant = Annotated[str, StringConstraints(pattern=_QUANT_PATTERN)]
_Positive = Annotated[int, Field(gt=0)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _GgufRepoRow(_Row):
    repo: _Repo
    quants: tuple[_Quant, ...] = ()
    source: _Text


class _PublishedQuantRow(_Row):
    name: _Quant
    repo: _Repo
    file_bytes: _Positive
    size_text: str = ""  # the size as published ("131GB") when the source rounds it
    source: _Text


class _ModelRow(_Row):
    id: _Id
    name: _Text
    vendor: _Text
    family: _Text
    total_params: _Positive
    active_params: _Positive
    capabilities: tuple[Capability, ...]
    context_trained: _Positive | None = None
    context_advertised: _Positive
    license: _Text
    hf_repo: _Repo
    aliases: tuple[_Repo, ...] = ()
    gguf_repos: tuple[_GgufRepoRow, ...] = Field(min_length=1)
    config: dict[str, Any]
    description: _Text
    published_quants: tuple[_PublishedQuantRow, ...] = ()
    sources: dict[str, _Text]
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> _ModelRow:
        if self.active_params > self.total_params:
            raise _FieldProblem("active_params", "active parameters exceed total parameters")
        if len(set(self.capabilities)) != len(self.capabilities):
            raise _FieldProblem("capabilities", "a capability is listed twice")
        if not isinstance(self.config.get("model_type"), str):
            raise _FieldProblem("config.model_type", "the config has no model_type string")
        for name in _SOURCED_FIELDS:
            if getattr(self, name) is not None and name not in self.sources:
                raise _FieldProblem(f"sources.{name}", f"no source for {name}")
        for key in self.sources:
            head, _, rest = key.partition(".")
            if head == "config" and rest:
                if rest not in self.config:
                    raise _FieldProblem(f"sources.{key}", f"source given for config.{rest}, which the config lacks")
            elif head not in type(self).model_fields or rest:
                raise _FieldProblem(f"sources.{key}", f"source given for unknown field {key!r}")
        names = [q.name.upper() for q in self.published_quants]
        if len(set(names)) != len(names):
            raise _FieldProblem("published_quants", "a published quant is listed twice")
        return self


class _FieldProblem(ValueError):
    """A cross-field check failed; carries the field it concerns."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True, slots=True)
class GgufRepo:
    """A Hugging Face repository that publishes GGUF files of the model, with the quants it has."""

    repo: str
    quants: tuple[str, ...]
    source: str

    def has_quant(self, quant: str) -> bool:
        wanted = quant.upper()
        return any(q.upper() == wanted for q in self.quants)


@dataclass(frozen=True, slots=True)
class PublishedQuant:
    """A quant whose size no rule predicts (e.g. a dynamic "UD" quant): its published file size."""

    name: str
    repo: str
    file_bytes: int
    source: str
    size_text: str = ""  # as published ("131GB"); file_bytes is then that figure in decimal units

    @property
    def is_rounded(self) -> bool:
        return bool(self.size_text)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return copy.copy(value)


@dataclass(frozen=True)
class ModelEntry:
    """One catalog model. ``config`` holds its Hugging Face ``config.json`` fields (read-only)."""

    id: str
    name: str
    vendor: str
    family: str
    total_params: int
    active_params: int
    capabilities: tuple[str, ...]
    context_trained: int | None
    context_advertised: int
    license: str
    hf_repo: str
    gguf_repos: tuple[GgufRepo, ...]
    config: Mapping[str, Any] = field(compare=False, hash=False, repr=False)
    description: str = ""
    published_quants: tuple[PublishedQuant, ...] = ()
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)
    aliases: tuple[str, ...] = ()
    notes: str = ""

    @property
    def is_moe(self) -> bool:
        return self.active_params < self.total_params

    @property
    def source(self) -> str:
        """The primary source of the row: where its config.json values come from."""
        return self.sources["config"]

    def config_dict(self) -> dict[str, Any]:
        """A mutable deep copy of ``config``, shaped exactly like the config.json file."""
        result: dict[str, Any] = _thaw(self.config)
        return result

    def source_of(self, name: str) -> str:
        """The source of a field (``total_params``, ``config.rope_theta``, ...)."""
        if name in self.sources:
            return self.sources[name]
        if name.startswith("config."):
            return self.sources["config"]
        raise KeyError(name)

    def published_quant(self, name: str) -> PublishedQuant | None:
        wanted = name.upper()
        return next((q for q in self.published_quants if q.name.upper() == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the shape of ``servefit models --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "family": self.family,
            "total_params": self.total_params,
            "active_params": self.active_params,
            "capabilities": list(self.capabilities),
            "context_trained": self.context_trained,
            "context_advertised": self.context_advertised,
            "license": self.license,
            "hf_repo": self.hf_repo,
            "aliases": list(self.aliases),
            "gguf_repos": [{"repo": g.repo, "quants": list(g.quants), "source": g.source} for g in self.gguf_repos],
            "published_quants": [
                {
                    "name": q.name,
                    "repo": q.repo,
                    "file_bytes": q.file_bytes,
                    "size_text": q.size_text,
                    "source": q.source,
                }
                for q in self.published_quants
            ],
            "description": self.description,
            "config": self.config_dict(),
            "source": self.source,
            "sources": dict(self.sources),
            "notes": self.notes,
        }


def _entry_from_row(row: _ModelRow) -> ModelEntry:
    return ModelEntry(
        id=row.id,
        name=row.name,
        vendor=row.vendor,
        family=row.family,
        total_params=row.total_params,
        active_params=row.active_params,
        capabilities=tuple(row.capabilities),
        context_trained=row.context_trained,
        context_advertised=row.context_advertised,
        license=row.license,
        hf_repo=row.hf_repo,
        gguf_repos=tuple(GgufRepo(g.repo, tuple(g.quants), g.source) for g in row.gguf_repos),
        config=_freeze(row.config),
        description=row.description,
        published_quants=tuple(
            PublishedQuant(q.name, q.repo, q.file_bytes, q.source, q.size_text) for q in row.published_quants
        ),
        sources=MappingProxyType(dict(row.sources)),
        aliases=tuple(row.aliases),
        notes=row.notes,
    )


def _describe(exc: ValidationError) -> tuple[str, str]:
    """The field path and message of a pydantic error (its first problem)."""
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    problem = ctx.get("error")
    if isinstance(problem, _FieldProblem):
        return problem.field_name, str(problem)
    loc = ".".join(str(p) for p in err["loc"]) or "(row)"
    return loc, str(err["msg"])


def parse_models(data: Any, *, path: str = MODELS_FILE) -> tuple[ModelEntry, ...]:
    """Validate the parsed YAML of a models file; errors name the file, the row and the field."""
    rows = data.get("models") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise CatalogError(f"{path}: expected a mapping with a 'models' list", path=path)
    entries: list[ModelEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        row_name = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else f"#{index + 1}"
        if not isinstance(raw, dict):
            raise CatalogError(f"{path}: row {row_name}: expected a mapping", path=path, row=row_name)
        try:
            row = _ModelRow.model_validate(raw)
        except ValidationError as exc:
            field_name, message = _describe(exc)
            raise CatalogError(
                f"{path}: row {row_name}: field {field_name}: {message}", path=path, row=row_name, field=field_name
            ) from exc
        if row.id in seen:
            raise CatalogError(
                f"{path}: row {row.id}: field id: duplicate id (also row #{seen[row.id] + 1})",
                path=path,
                row=row.id,
                field="id",
            )
        seen[row.id] = index
        entries.append(_entry_from_row(row))
    return tuple(entries)


def _read_models_file() -> Any:
    """Parse data/models.yaml, with libyaml when PyYAML has it (seven times faster on this file)."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:  # pragma: no cover - PyYAML built without libyaml
        return load_data_file(MODELS_FILE)
    try:
        text = resources.files("servefit.catalog").joinpath("data", MODELS_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"catalog file {MODELS_FILE}: cannot read ({exc})", path=MODELS_FILE) from exc
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog file {MODELS_FILE}: invalid YAML ({exc})", path=MODELS_FILE) from exc


@functools.cache
def load_models() -> tuple[ModelEntry, ...]:
    """Every catalog model, validated once and cached."""
    return parse_models(_read_models_file())


def list_models() -> tuple[ModelEntry, ...]:
    """Every catalog model, in file order."""
    return load_models()


_HF_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/|^hf://", re.IGNORECASE)


@functools.cache
def _index() -> dict[str, ModelEntry]:
    index: dict[str, ModelEntry] = {}
    for entry in load_models():
        for key in (entry.hf_repo, *entry.aliases, *(g.repo for g in entry.gguf_repos)):
            index.setdefault(key.lower(), entry)
    for entry in load_models():  # ids win over repo names
        index[entry.id] = entry
    return index


def get_model(model_id: str) -> ModelEntry:
    """A model by id or Hugging Face repo (base or GGUF), case-insensitive; else UnknownModelError."""
    query = _HF_PREFIX.sub("", model_id.strip()).strip("/").lower()
    entry = _index().get(query)
    if entry is not None:
        return entry
    ids = [e.id for e in load_models()]
    suggestions = difflib.get_close_matches(query, ids, n=3, cutoff=0.6)
    if not suggestions:
        tail = query.rsplit("/", 1)[-1]
        suggestions = difflib.get_close_matches(tail, ids, n=3, cutoff=0.5)
    if not suggestions and query:
        suggestions = [e.id for e in search_models(query.replace("/", " "))][:3]
    raise UnknownModelError(model_id, suggestions)


def _haystack(entry: ModelEntry) -> str:
    parts = [entry.id, entry.name, entry.vendor, entry.family, entry.hf_repo, entry.license, *entry.aliases]
    parts += list(entry.capabilities) + [c.replace("_", "-") for c in entry.capabilities]
    parts += [g.repo for g in entry.gguf_repos]
    parts.append("moe" if entry.is_moe else "dense")
    return " ".join(parts).lower()


def search_models(query: str) -> list[ModelEntry]:
    """Models whose id, name, vendor, family, repos or capabilities contain every word of the query."""
    words = query.lower().split()
    return [e for e in load_models() if all(w in _haystack(e) for w in words)]


@functools.cache
def available_quants(model_id: str) -> tuple[str, ...]:
    """Quant names ``model_spec`` can predict for the model (llama.cpp file types that apply)."""
    from servefit.inventory import quant_ladder

    entry = get_model(model_id)
    return tuple(q.name for q in quant_ladder(entry.config_dict()))


def best_gguf_repo(entry: ModelEntry, quant: str) -> str:
    """The first listed GGUF repository that publishes ``quant``, else the first one listed."""
    for repo in entry.gguf_repos:
        if repo.has_quant(quant):
            return repo.repo
    return entry.gguf_repos[0].repo


def publication_warning(entry: ModelEntry, quant: str) -> str | None:
    """A warning when no listed GGUF repository is known to publish ``quant`` of this model.

    The plan of such a quantization is still right for a file made with ``llama-quantize``, but the
    ``-hf REPO:QUANT`` of its command line may name a file that does not exist.
    """
    wanted = quant.strip().upper()
    if entry.published_quant(wanted) is not None or any(r.has_quant(wanted) for r in entry.gguf_repos):
        return None
    repo = best_gguf_repo(entry, wanted)
    listed = sorted({q.upper() for r in entry.gguf_repos for q in r.quants} | {q.name for q in entry.published_quants})
    if not listed:
        return (
            f"the catalog does not know which files {repo} publishes: check that it has {wanted} "
            f"before deploying with -hf {repo}:{wanted}"
        )
    return (
        f"no GGUF repository of {entry.name} in the catalog lists {wanted} (listed: {', '.join(listed)}): "
        f"its size is predicted, and -hf {repo}:{wanted} may not exist; make the file with llama-quantize "
        "or pick a listed quantization"
    )


def model_spec(model_id: str, quant: str) -> ModelSpec:
    """The predicted ModelSpec of a catalog model at a llama.cpp file type (``Q4_K_M``, ...)."""
    from servefit.inventory import spec_from_config

    entry = get_model(model_id)
    available = available_quants(entry.id)
    by_upper = {q.upper(): q for q in available}
    wanted = by_upper.get(quant.strip().upper())
    if wanted is None:
        close = difflib.get_close_matches(quant.upper(), list(by_upper), n=3, cutoff=0.6)
        raise UnknownQuantError(quant, [by_upper[c] for c in close] or list(available))
    spec = spec_from_config(
        entry.config_dict(),
        wanted,
        name=entry.name,
        model_id=entry.id,
        gguf_repo=best_gguf_repo(entry, wanted),
        source=entry.id,
    )
    if entry.context_trained and entry.context_trained < spec.hparams.n_ctx_train:
        spec = replace(spec, context_limit=entry.context_trained)
    return spec


@dataclass(frozen=True, slots=True)
class LadderRung:
    """One quant of a model: predicted from the config, or published by an uploader (no rule predicts it).

    ``tensor_bytes`` is the predicted sum of tensor data (None for published-only quants);
    ``bits_per_weight`` is 8 x tensor bytes / parameters for predicted rungs and 8 x file bytes / total
    parameters (as catalogued) for published ones.
    """

    name: str
    tensor_bytes: int | None
    file_bytes: int
    bits_per_weight: float
    source: str  # "predicted" | "published"
    reference: str = ""  # where a published size comes from
    size_text: str = ""  # the published size as written, when the source rounds it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tensor_bytes": self.tensor_bytes,
            "file_bytes": self.file_bytes,
            "bits_per_weight": round(self.bits_per_weight, 4),
            "source": self.source,
            "reference": self.reference,
            "size_text": self.size_text,
        }


def _predicted_rungs(config: Mapping[str, Any]) -> list[LadderRung]:
    from servefit.inventory import quant_ladder

    return [LadderRung(q.name, q.tensor_bytes, q.file_bytes, q.bits_per_weight, q.source) for q in quant_ladder(config)]


@functools.cache
def _catalog_ladder(model_id: str) -> tuple[LadderRung, ...]:
    entry = get_model(model_id)
    rungs = _predicted_rungs(entry.config_dict())
    predicted = {r.name.upper() for r in rungs}
    for q in entry.published_quants:
        if q.name.upper() in predicted:
            continue
        bpw = 8 * q.file_bytes / entry.total_params
        rungs.append(LadderRung(q.name, None, q.file_bytes, bpw, "published", q.source, q.size_text))
    return tuple(sorted(rungs, key=lambda r: (r.file_bytes, r.name)))


def model_ladder(model_id: str) -> tuple[LadderRung, ...]:
    """Every quant of a catalog model, smallest file first: the predicted llama.cpp file types and the
    published sizes of quants no rule predicts."""
    return _catalog_ladder(get_model(model_id).id)


def config_ladder(config: Mapping[str, Any]) -> tuple[LadderRung, ...]:
    """The predicted quant ladder of a Hugging Face config.json mapping, smallest file first."""
    return tuple(sorted(_predicted_rungs(config), key=lambda r: (r.file_bytes, r.name)))


def is_config_path(text: str) -> bool:
    """Whether a model argument names a local config.json (a ``.json`` path, or a folder holding one)."""
    if text.lower().endswith(".json"):
        return True
    path = Path(text)
    return ("/" in text or text.startswith(".")) and path.is_dir() and (path / "config.json").is_file()


_MAX_CONFIG_BYTES = 16 * 1024 * 1024


def read_config_json(path: str | Path) -> dict[str, Any]:
    """Read a Hugging Face ``config.json`` (or a folder holding one); errors name the path."""
    target = Path(path)
    if target.is_dir():
        target = target / "config.json"
    try:
        with target.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"{target}: cannot read config.json ({exc.strerror or exc})", path=str(target)) from exc
    if len(raw) > _MAX_CONFIG_BYTES:
        raise SourceError(f"{target}: too large for a config.json (over 16 MiB)", path=str(target))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{target}: not a valid JSON config.json ({exc})", path=str(target)) from exc
    if not isinstance(data, dict):
        raise SourceError(
            f"{target}: a config.json must hold a JSON object, got {type(data).__name__}", path=str(target)
        )
    return data
