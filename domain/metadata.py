"""Dataset metadata in the platform's templates: `default` (what the catalog shows), `dcat`
(DCAT-AP) and `inspire`. The management API takes `{"metadata": {TEMPLATE: {NAME: VALUE}}}`,
each value plain or as `{"value": …}` (the platform's `remote_value` and
`override_remote_value`, about federated datasets, are read and dropped), or the flat
shorthand `{NAME: VALUE}` for the default template, and answers in the template form; the
Explore API's `metas` carries the same, plain.

Kept on the Dataset: title and description as its own fields; the default template's other
values flat in `metadata` under their stored names (`keywords` for the platform's `keyword`);
another template's as `metadata[TEMPLATE]`, a dict."""
from __future__ import annotations

from typing import Any

from domain.datasets import Dataset
from domain.errors import Invalid

TEXT, LIST, FORMATS = "text", "list", "formats"
TEMPLATES: dict[str, dict[str, str]] = {
    "default": {"title": TEXT, "description": TEXT, "keyword": LIST, "theme": LIST, "license": TEXT, "license_url": TEXT,
                "language": TEXT, "timezone": TEXT, "publisher": TEXT, "references": TEXT, "attributions": TEXT,
                "geographic_reference": LIST, "territory": LIST,
                # exportd's own: the fields matching a record between versions (domain/delta.py), the
                # formats exported at each publish (domain/prepared.py)
                "key_fields": LIST, "exports_on_publish": FORMATS},
    "dcat": {"created": TEXT, "issued": TEXT, "creator": TEXT, "contributor": TEXT, "contact_name": TEXT,
             "contact_email": TEXT, "accrualperiodicity": TEXT, "spatial": TEXT, "temporal": TEXT, "granularity": TEXT,
             "dataquality": TEXT, "publisher_type": TEXT, "conforms_to": TEXT, "temporal_coverage_start": TEXT,
             "temporal_coverage_end": TEXT, "accessRights": TEXT, "relation": TEXT},
    "inspire": {"theme": LIST, "type": TEXT, "file_identifier": TEXT, "hierarchy_level": TEXT, "hierarchy_level_name": TEXT,
                "spatial_resolution": TEXT, "topologic_consistency": TEXT, "contact_person": TEXT, "contact_email": TEXT,
                "contact_address": TEXT, "contact_postalcode": TEXT, "contact_city": TEXT, "contact_country": TEXT},
}
COMPUTED = ("modified", "records_count", "data_processed", "metadata_processed")  # default metadata the service keeps
STORED_AS = {"keyword": "keywords"}  # default names stored (and taken flat) under another name
OWN_FIELDS = ("title", "description")  # the Dataset's own
WRAPPER_KEYS = {"value", "remote_value", "override_remote_value"}


def _value(template: str, name: str, raw: Any) -> Any:
    where = f"metadata {template}.{name}"
    if isinstance(raw, dict):
        extra = sorted(set(raw) - WRAPPER_KEYS)
        if "value" not in raw or extra:
            raise Invalid(f"{where} must be a value or {{\"value\": …}}" + (f", not with {', '.join(extra)}" if extra else ""),
                          field=f"metadata.{template}.{name}")
        raw = raw["value"]
    if TEMPLATES[template][name] == FORMATS:
        from domain import prepared  # the format registry, which the web and worker processes import anyway

        try:
            return prepared.validated_formats(raw)
        except ValueError as exc:
            raise Invalid(f"{where} must be {exc}", field=f"metadata.{template}.{name}") from None
    if TEMPLATES[template][name] == LIST:
        if raw is None:
            return []
        if isinstance(raw, str):
            return [v.strip() for v in raw.split(",") if v.strip()]
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise Invalid(f"{where} must be a list of strings", field=f"metadata.{template}.{name}")
        return raw
    if raw is not None and not isinstance(raw, str):
        raise Invalid(f"{where} must be a string", field=f"metadata.{template}.{name}")
    return raw or ""


def _template(template: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise Invalid(f"metadata template {template!r} must be an object of names and values", field=f"metadata.{template}")
    known = TEMPLATES[template]
    unknown = sorted(set(values) - set(known))
    if unknown:
        computed = [n for n in unknown if template == "default" and n in COMPUTED]
        hint = f" ({', '.join(computed)}: kept by the service)" if computed else ""
        raise Invalid(f"unknown metadata {', '.join(f'{template}.{n}' for n in unknown)}{hint}; "
                      f"{template} holds {', '.join(known)}", field=f"metadata.{template}")
    return {name: _value(template, name, raw) for name, raw in values.items()}


def parse(raw: Any) -> dict[str, Any]:
    """The metadata a request body gives, in the template form or flat, as the Dataset keeps it
    (see the module's docstring); a 400 naming any unknown template or name."""
    if not isinstance(raw, dict):
        raise Invalid("'metadata' must be an object: {\"default\": {\"title\": …}, \"dcat\": {…}} or {\"title\": …}",
                      field="metadata")
    flat_names = set(TEMPLATES["default"]) | set(STORED_AS.values())
    templated = {name for name, value in raw.items() if name not in flat_names and isinstance(value, dict)}
    if templated and len(templated) < len(raw):
        raise Invalid("metadata is either templates ({\"default\": {…}}) or the default template's names, not both",
                      field="metadata")
    if not templated:  # the flat shorthand
        renamed = {next((k for k, v in STORED_AS.items() if v == name), name): value for name, value in raw.items()}
        chosen = {"default": renamed}
    else:
        unknown = sorted(templated - set(TEMPLATES))
        if unknown:
            raise Invalid(f"unknown metadata template(s) {', '.join(map(repr, unknown))}; templates: {', '.join(TEMPLATES)}",
                          field="metadata")
        chosen = raw
    out: dict[str, Any] = {}
    for template, values in chosen.items():
        parsed = _template(template, values)
        if template == "default":
            out.update({STORED_AS.get(name, name): value for name, value in parsed.items()})
        elif parsed:
            out[template] = parsed
    return out


def merged(dataset: Dataset, changes: dict[str, Any]) -> None:
    """Apply parsed metadata to `dataset`: a template's values merge with those it had."""
    for name, value in changes.items():
        if name == "title":
            dataset.title = value or dataset.dataset_id
        elif name == "description":
            dataset.description = value
        elif name in TEMPLATES:
            dataset.metadata[name] = {**dataset.metadata.get(name, {}), **value}
        else:
            dataset.metadata[name] = value


def plain(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """Every template's values, plain: the default template whole (unset names null, the
    computed ones from the dataset), the others as set. The Explore API's `metas`."""
    default: dict[str, Any] = {}
    for name, kind in TEMPLATES["default"].items():
        stored = STORED_AS.get(name, name)
        value = getattr(dataset, name) if name in OWN_FIELDS else dataset.metadata.get(stored)
        default[name] = value if value is not None else ([] if kind == LIST else None)
    default.update(records_count=dataset.records_count, modified=dataset.modified,
                   data_processed=dataset.modified, metadata_processed=dataset.modified)
    metas = {"default": default}
    for template in TEMPLATES:
        if template != "default" and dataset.metadata.get(template):
            metas[template] = dict(dataset.metadata[template])
    return metas


def template_form(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The management API's answer: each template's names with {"value": …}."""
    return {template: {name: {"value": value} for name, value in values.items()} for template, values in plain(dataset).items()}
