"""Delta exports: the records added, changed or removed between an earlier version of a dataset
(a published version, or a snapshot saved with the management API) and its current one,
matched on the dataset's key fields (its `key_fields` metadata). Each record carries
`_change` — "added", "changed" or "removed"; a removed record holds only its key.

Versions are immutable Parquet files, so a delta is computed once per export by one polars
pipeline streamed into a temporary Parquet file, which the export then scans as it would a
version: filters, select and every format apply to it unchanged."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from domain.datasets import Dataset
from domain.errors import Invalid
from domain.fields import Field

CHANGE = "_change"
CHANGES = ("added", "changed", "removed")
KEY_FIELDS = "key_fields"  # the dataset metadata naming the fields that identify a record
MAX_SINCE = 100  # characters of a changes_since: a version or a snapshot id
PUBLISHING = ("publish", "recover_realtime_records")  # changes that made a published version


def fields_of(fields: list[Field]) -> list[Field]:
    """A delta's fields: the dataset's, then `_change`."""
    return [*fields, Field(CHANGE, "text", "Change")]


def key_fields(dataset: Dataset) -> list[str]:
    """The dataset's key fields, each one of its fields; Invalid when it has none."""
    keys = dataset.metadata.get(KEY_FIELDS) or []
    if not keys:
        raise Invalid(f"dataset {dataset.dataset_id!r} has no key fields, so its records cannot be matched between "
                      f"versions; an administrator sets them (management API metadata {KEY_FIELDS!r})",
                      field="changes_since")
    known = {f.name for f in dataset.fields}
    missing = [k for k in keys if k not in known]
    if missing:
        raise Invalid(f"the key field(s) {', '.join(missing)} of dataset {dataset.dataset_id!r} are not among its fields",
                      field="changes_since")
    return list(keys)


def base_key(dataset: Dataset, since: str, snapshots: list[dict[str, Any]], changes: list[dict[str, Any]]) -> str:
    """The storage key of the version `since` names: a snapshot's id or a published version."""
    for snapshot in snapshots:
        if snapshot["version_uid"] == since:
            return snapshot["data_key"]
    published = {c["details"].get("version") for c in changes if c.get("type") in PUBLISHING}
    if since in published:
        return f"datasets/{dataset.dataset_uid}/{since}.parquet"  # worker/dataset_jobs.py's _version_key
    raise Invalid(f"dataset {dataset.dataset_id!r} has no version or snapshot {since[:MAX_SINCE]!r} "
                  f"(its …/versions and …/snapshots list them)", field="changes_since")


def versioned(dataset: Dataset, since: str) -> Dataset:
    """The dataset as a delta export sees it: its fields with `_change`, and a version of its
    own, so that a delta never shares a file with a whole export (domain/sharing.py)."""
    return dataclasses.replace(dataset, fields=fields_of(dataset.fields), version=f"{dataset.version}~since~{since}")


def schema_of(current: pa.Schema) -> pa.Schema:
    """The delta's Arrow schema: the current version's and a `_change` string."""
    return current.append(pa.field(CHANGE, pa.string()))


def write(old_path: str, new_path: str, keys: list[str], out_path: str) -> None:
    """The delta between two version files into `out_path`, in the current version's columns
    and order, added records first, then changed, then removed (keys only)."""
    old, new = pl.scan_parquet(old_path), pl.scan_parquet(new_path)
    new_schema, old_names = new.collect_schema(), set(old.collect_schema().names())
    missing = [k for k in keys if k not in old_names]
    if missing:
        raise Invalid(f"the earlier version has no key field(s) {', '.join(missing)}", field="changes_since")
    compared = [c for c in new_schema.names() if c in old_names and c not in keys]
    added = new.join(old.select(keys), on=keys, how="anti").with_columns(pl.lit("added").alias(CHANGE))
    changed = (new.join(old.select([*keys, *compared]).rename({c: f"{c}\0old" for c in compared}), on=keys, how="inner")
               .filter(pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}\0old")) for c in compared])
                       if compared else pl.lit(False))
               .select(new_schema.names()).with_columns(pl.lit("changed").alias(CHANGE)))
    removed = (old.select(keys).join(new.select(keys), on=keys, how="anti")
               .with_columns([pl.lit(None, dtype).alias(name) for name, dtype in new_schema.items() if name not in keys])
               .select(new_schema.names()).with_columns(pl.lit("removed").alias(CHANGE)))
    pl.concat([added, changed, removed], how="vertical").sink_parquet(out_path)


class DeltaFile:
    """`with DeltaFile(old, new, keys) as path:` the delta written to a temporary Parquet file,
    removed on exit."""

    def __init__(self, old_path: str, new_path: str, keys: list[str]):
        self.old_path, self.new_path, self.keys = old_path, new_path, keys
        self.path = ""

    def __enter__(self) -> str:
        handle, self.path = tempfile.mkstemp(prefix="exportd-delta-", suffix=".parquet")
        os.close(handle)
        try:
            write(self.old_path, self.new_path, self.keys, self.path)
        except BaseException:
            Path(self.path).unlink(missing_ok=True)
            raise
        return self.path

    def __exit__(self, *exc: object) -> None:
        Path(self.path).unlink(missing_ok=True)
