"""Exports prepared when a dataset is published, as ArcGIS Hub caches its downloads: the formats
a dataset's `exports_on_publish` metadata lists (else EXPORTD_EXPORTS_ON_PUBLISH, the portal's
default), each the whole dataset with default options. They are ordinary exports of an owner of
their own, queued at a priority below every visitor's; once one is ready, a visitor's POST of
the same format, query and options shares its file and is born ready (domain/sharing.py)."""
from __future__ import annotations

from typing import Any, Sequence

from arq.connections import ArqRedis

from domain import exports as ex
from domain.datasets import Dataset
from domain.exports import Export, ExportRepo
from domain.queue import enqueue_export
from domain.query import RecordQuery
from formats import REGISTRY

OWNER = "system:prepared"  # no user's name has a colon
PRIORITY = -1  # after every export a visitor or user asked for (worker/prompt_worker.py)
METADATA = "exports_on_publish"


def formats_to_prepare(dataset: Dataset, default: Sequence[str]) -> list[str]:
    """The formats to prepare for this dataset: its own list when it has one (an empty list:
    none), else the portal's; those that do not fit its fields (a map format without a
    geometry) are left out."""
    wanted = dataset.metadata.get(METADATA)
    names = wanted if isinstance(wanted, list) else list(default)
    return [REGISTRY.get(n).name for n in names if n in REGISTRY and REGISTRY.get(n).fits(dataset.fields)]


def validated_formats(value: Any) -> list[str]:
    """`exports_on_publish` as the management API takes it: format names, a list or comma-separated."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of format names")
    unknown = [v for v in value if v not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(map(repr, unknown))}; known: {', '.join(REGISTRY.names())}")
    return list(dict.fromkeys(REGISTRY.get(v).name for v in value))


async def prepare(exports: ExportRepo, pool: ArqRedis, queue_name: str, dataset: Dataset, default: Sequence[str]) -> list[str]:
    """Queue the prepared exports of a dataset's newly published version; their ids."""
    ids = []
    for name in formats_to_prepare(dataset, default):
        export = Export.new(owner=OWNER, name=f"{dataset.title} ({name}, prepared)", export_type=name,
                            dataset_id=dataset.dataset_id, resource_href=f"/api/v2/catalog/datasets/{dataset.dataset_id}",
                            query=RecordQuery().as_dict(), records_total=dataset.records_count, priority=PRIORITY)
        await exports.create(export)
        await exports.require(export.id, ex.QUEUED, expect=(ex.INITIALIZING,))
        await enqueue_export(pool, queue_name, export.id, dataset.dataset_id)
        ids.append(export.id)
    return ids
