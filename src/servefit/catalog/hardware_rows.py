"""Rows of the hardware data files (``catalog/data/{gpus,machines,workstations}.yaml``), checked at load.

Pydantic at the edge: unique ids, units in field names, positive numbers and a source on every row.
A problem raises :class:`~servefit.errors.CatalogError` naming the file, the row and the field.
``servefit.hardware`` turns the rows into its frozen catalog types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from servefit.errors import CatalogError

__all__ = [
    "GpuRow",
    "MachineRow",
    "WorkstationRow",
    "parse_gpu_rows",
    "parse_machine_rows",
    "parse_workstation_rows",
    "slug",
]

GIB = 1 << 30
MIB = 1 << 20


def slug(text: str) -> str:
    """An id from a display name: lower case, runs of other characters turned into one ``-``."""
    return re.sub(r"[^a-z0-9._]+", "-", text.strip().lower()).strip("-")


_ID = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"
_DATE = r"^\d{4}-\d{2}(-\d{2})?$"
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Source = Annotated[str, Field(min_length=5)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class GpuRow(_Row):
    id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=2)]
    vendor: Literal["NVIDIA", "AMD", "Apple", "Intel"]
    architecture: Annotated[str, Field(min_length=2)]
    memory_gib: Positive
    memory_reported_mib: PositiveInt | None = None
    memory_type: str = ""
    bandwidth_gb_s: Positive
    fp16_tflops: Positive
    int8_tops: Positive | None = None
    compute_capability: Annotated[str, Field(pattern=r"^(\d+\.\d+)?$")] = ""
    gfx_target: Annotated[str, Field(pattern=r"^(gfx[0-9a-f]+)?$")] = ""
    interconnect: str = ""
    pcie_gen: Literal[3, 4, 5, 6] | None = None
    pcie_lanes: Literal[1, 4, 8, 16] | None = None
    host_link_gb_s: Positive | None = None
    unified_memory: bool = False
    tdp_w: Positive | None = None
    aliases: tuple[str, ...] = ()
    source: Source
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> GpuRow:
        if self.vendor == "NVIDIA" and not self.compute_capability:
            raise ValueError("compute_capability: required for NVIDIA GPUs")
        if self.memory_reported_mib is not None and self.memory_reported_mib * MIB > self.memory_gib * GIB:
            raise ValueError("memory_reported_mib: larger than memory_gib")
        if not self.unified_memory and self.pcie_gen is None and self.host_link_gb_s is None:
            raise ValueError("pcie_gen: a discrete GPU needs pcie_gen/pcie_lanes or host_link_gb_s")
        return self


class MachineRow(_Row):
    provider: Annotated[str, Field(min_length=2)]
    instance: Annotated[str, Field(min_length=1)]
    gpu: Annotated[str, Field(pattern=_ID)]
    gpu_count: PositiveInt
    vcpus: PositiveInt | None = None
    ram: Positive | None = None
    ram_unit: Literal["GB", "GiB"] = "GB"
    price_per_hour: Positive | None = None
    currency: Literal["EUR", "USD"] | None = None
    price_date: Annotated[str, Field(pattern=_DATE)] | None = None
    price_basis: str | None = None
    region: str | None = None
    source: Source
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MachineRow:
        if self.price_per_hour is not None and (self.currency is None or self.price_date is None):
            raise ValueError("currency: a price needs its currency and price_date")
        if self.price_per_hour is None and not self.notes:
            raise ValueError("notes: a row without a price must say why in notes")
        if (self.vcpus is None or self.ram is None) and not self.notes:
            raise ValueError("notes: a row without vcpus or ram must say why in notes")
        return self

    @property
    def id(self) -> str:
        return f"{slug(self.provider)}/{slug(self.instance)}"


class WorkstationRow(_Row):
    id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=2)]
    gpu: Annotated[str, Field(pattern=_ID)]
    gpu_count: PositiveInt
    ram_gib: Positive
    cpu_cores: PositiveInt
    ram_bandwidth_gb_s: Positive | None = None
    gpu_memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    disk_read_gb_s: Positive
    source: Source
    notes: str = ""

    @field_validator("id")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("a workstation id has no '/'")
        return value


_R = TypeVar("_R", bound=_Row)


def _row_label(index: int, row: object) -> str:
    if isinstance(row, Mapping):
        if "id" in row:
            return f"row {index + 1} ({row['id']})"
        if "provider" in row and "instance" in row:
            return f"row {index + 1} ({slug(str(row['provider']))}/{slug(str(row['instance']))})"
    return f"row {index + 1}"


def _parse_rows(path: str, data: Any, model: type[_R]) -> list[_R]:
    if not isinstance(data, list):
        raise CatalogError(f"catalog file {path}: expected a list of rows, got {type(data).__name__}", path=path)
    rows: list[_R] = []
    for index, item in enumerate(data):
        label = _row_label(index, item)
        if not isinstance(item, Mapping):
            raise CatalogError(f"catalog file {path}, {label}: expected a mapping", path=path, row=label)
        try:
            rows.append(model.model_validate(item))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or _field_from_message(error["msg"])
            message = re.sub(r"^(Value error, )?([a-z_]+: )?", "", error["msg"])
            raise CatalogError(
                f"catalog file {path}, {label}, field {field!r}: {message}", path=path, row=label, field=field
            ) from exc
    return rows


def _field_from_message(message: str) -> str:
    match = re.match(r"(?:Value error, )?([a-z_]+):", message)
    return match.group(1) if match else ""


def _unique(path: str, ids: Iterable[tuple[int, str]]) -> None:
    seen: dict[str, int] = {}
    for index, key in ids:
        if key in seen:
            label = f"row {index + 1} ({key})"
            raise CatalogError(
                f"catalog file {path}, {label}, field 'id': duplicate of row {seen[key] + 1}",
                path=path,
                row=label,
                field="id",
            )
        seen[key] = index


def parse_gpu_rows(data: Any, path: str = "gpus.yaml") -> list[GpuRow]:
    """Validate the rows of a GPU file; errors name the file, the row and the field."""
    rows = _parse_rows(path, data, GpuRow)
    _unique(path, enumerate(row.id for row in rows))
    _unique(path, ((i, alias) for i, row in enumerate(rows) for alias in (row.id, *row.aliases)))
    return rows


def parse_machine_rows(data: Any, gpu_ids: Iterable[str], path: str = "machines.yaml") -> list[MachineRow]:
    """Validate the rows of a cloud-instance file against the known GPU ids."""
    rows = _parse_rows(path, data, MachineRow)
    _unique(path, enumerate(row.id for row in rows))
    _check_gpu_refs(path, rows, set(gpu_ids))
    return rows


def parse_workstation_rows(data: Any, gpu_ids: Iterable[str], path: str = "workstations.yaml") -> list[WorkstationRow]:
    """Validate the rows of a workstation file against the known GPU ids."""
    rows = _parse_rows(path, data, WorkstationRow)
    _unique(path, enumerate(row.id for row in rows))
    _check_gpu_refs(path, rows, set(gpu_ids))
    return rows


def _check_gpu_refs(path: str, rows: Sequence[MachineRow | WorkstationRow], known: set[str]) -> None:
    for index, row in enumerate(rows):
        if row.gpu not in known:
            label = f"row {index + 1} ({row.id})"
            raise CatalogError(
                f"catalog file {path}, {label}, field 'gpu': unknown GPU id {row.gpu!r}",
                path=path,
                row=label,
                field="gpu",
            )
