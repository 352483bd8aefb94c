"""`exportd export` and `exportd exports list|show|cancel|download`: the OSDI export resource
at /api/v1/exports. Waiting uses GET …?wait=N, which answers at the first change of status,
so a queued export costs one request a change rather than a poll a second; while the export
is processing the wait is short, to refresh the progress bar."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from api.cli.client import Client
from api.cli.download import download
from api.cli.errors import CliError, Failed, Interrupted
from api.cli.output import Output, table
from api.cli.progress import size

LIVE = ("initializing", "pending_approval", "queued", "processing")  # domain/exports.py: may still become ready
READY = "ready"
HOLD = 30  # seconds a GET ?wait= may hold while nothing changes
REFRESH = 1  # seconds between progress refreshes while processing
EXPORTS = "/api/v1/exports"


def export_id(export: dict[str, Any]) -> str:
    return export["_links"]["self"]["href"].rsplit("/", 1)[1]


def records_href(base: str, dataset: str, where: list[str], select: str | None) -> str:
    """The osdi:resource link: the dataset's records URL, with the query as parameters."""
    params = [("where", w) for w in where] + ([("select", select)] if select else [])
    href = f"{base}/api/v2/catalog/datasets/{quote(dataset, safe='')}/records"
    return f"{href}?{urlencode(params)}" if params else href


TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def declared_options(client: Client, export_type: str) -> dict[str, str]:
    """Option name → type ("boolean", "integer", "string", "fields", …) of a format, from the
    service's x-formats; {} for a format it does not list (its 400 will say so)."""
    for fmt in client.request("GET", "/api/openapi.json").get("x-formats", []):
        if export_type == fmt["name"] or export_type in fmt.get("aliases", ()):
            return {o["name"]: o["type"] for o in fmt["options"]}
    return {}


def options(pairs: list[str], types: dict[str, str]) -> dict[str, Any]:
    """--option k=v, repeated, as the JSON values the service takes: a JSON body's booleans and
    integers must be JSON booleans and integers, so `compressed=yes` becomes true."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--option takes NAME=VALUE, not {pair!r}")
        kind = types.get(name)
        if kind == "boolean":
            if value.lower() not in TRUE + FALSE:
                raise CliError(f"--option {name} takes true or false, not {value!r}")
            parsed[name] = value.lower() in TRUE
        elif kind == "integer":
            try:
                parsed[name] = int(value)
            except ValueError:
                raise CliError(f"--option {name} takes an integer, not {value!r}") from None
        elif kind == "fields":
            parsed[name] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            parsed[name] = value
    return parsed


def create(client: Client, args: argparse.Namespace, out: Output) -> int:
    body: dict[str, Any] = {"export_type": args.format,
                            "_links": {"osdi:resource": {"href": records_href(client.url, args.dataset, args.where, args.select)}}}
    if args.name:
        body["name"] = args.name
    if args.changes_since:
        body["changes_since"] = args.changes_since
    if args.option:
        body["options"] = options(args.option, declared_options(client, args.format))
    if args.notify_url:
        body["notify_url"] = args.notify_url
    if args.estimate:
        return _estimate(client, body, out)
    export = client.request("POST", EXPORTS, body)
    if not (args.wait or args.output):
        out.result(export, f"export {export_id(export)}: {export['status']}")
        return 0
    return _finish(client, export, args.output, out)


def _estimate(client: Client, body: dict[str, Any], out: Output) -> int:
    answer = client.request("POST", f"{EXPORTS}/estimate", body)
    lines = [f"records: {answer['records_total']:,}"]
    if answer["estimated_bytes"] is None:
        lines.append("size and duration: unknown until an export has been written")
    else:
        basis = "this format's" if answer["measured_format"] else "all formats'"
        lines += [f"size: about {answer['estimated_bytes']:,} bytes",
                  f"duration: about {answer['estimated_seconds']:g} s once a worker takes it "
                  f"(from {basis} {answer['measured_exports']} exports written)"]
    out.result(answer, "\n".join(lines))
    return 0


def fetch(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`exports download ID`: wait for the export if it is still live, then download it."""
    return _finish(client, _get(client, args.id), args.output, out)


def _get(client: Client, ident: str, wait: int = 0) -> dict[str, Any]:
    return client.request("GET", f"{EXPORTS}/{quote(ident, safe='')}", query={"wait": wait} if wait else None,
                          timeout=client.timeout + wait)


def _finish(client: Client, export: dict[str, Any], output: Path | None, out: Output) -> int:
    ident = export_id(export)
    try:
        export = wait(client, export, out)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; the export goes on (exportd exports show {ident})") from None
    if export["status"] != READY:
        out.result(export, "")
        verb = {"rejected": "was rejected", "expired": "has expired"}.get(export["status"], export["status"])
        raise Failed(f"export {ident} {verb}" + (f": {export['detail']}" if export.get("detail") else ""))
    target = output or Path(export["file_name"])
    try:
        download(client, ident, export["download_link"], target, export["file_size"], out)
    except KeyboardInterrupt:
        raise Interrupted(f"download stopped; run the same command again to continue (exportd exports download {ident}"
                          f" -o {target})") from None
    out.result(export, f"{target}: {export['records_count']:,} records, {size(export['file_size'])}")
    return 0


def wait(client: Client, export: dict[str, Any], out: Output) -> dict[str, Any]:
    """The export once it is no longer live, with its status changes as notes and its
    progress as a bar."""
    ident = export_id(export)
    bar = None
    seen = None
    while export["status"] in LIVE:
        status = export["status"]
        if status != seen:
            seen = status
            if bar:  # back to queued: a lost worker's export runs again
                bar.close()
                bar = None
            out.note(f"export {ident}: {status}" + (f" ({export['detail']})" if export.get("detail") else ""))
        if status == "processing":
            bar = bar or out.progress("exporting", "records")
            bar.update(export["progress"]["records_done"], export["progress"]["records_total"])
        export = _get(client, ident, REFRESH if status == "processing" else HOLD)
    if bar:
        if export.get("progress"):
            bar.update(export["progress"]["records_done"], export["progress"]["records_total"])
        bar.close()
    return export


def listing(client: Client, args: argparse.Namespace, out: Output) -> int:
    query = {"page": args.page, "per_page": args.per_page, "status": args.status, "dataset": args.dataset}
    page = client.request("GET", EXPORTS, query={k: v for k, v in query.items() if v is not None})
    exports = page["_embedded"]["osdi:exports"]
    rows = [(export_id(e), e["status"], e["export_type"], e.get("dataset_id", ""), described(e), _count(e),
             size(e["file_size"]) if "file_size" in e else "", e["created_date"], e.get("owner", ""), e["name"])
            for e in exports]
    out.result(exports, table(rows, ("ID", "STATUS", "FORMAT", "DATASET", "QUERY", "RECORDS", "SIZE", "CREATED", "OWNER", "NAME"))
               + f"\npage {page['page']} of {page['total_pages']} ({page['total_records']} exports)")
    return 0


def described(export: dict[str, Any], width: int = 40) -> str:
    """The export's filter and options in one short cell: `city = 'Paris'; delimiter=,`."""
    query = export.get("query") or {}
    parts = [" AND ".join(query["where"]) if isinstance(query.get("where"), list) else str(query.get("where") or "")]
    parts += [f"{k}={v}" for k, v in query.items() if k != "where" and v not in (None, "", [])]
    parts += [f"{k}={v}" for k, v in (export.get("options") or {}).items()]
    text = "; ".join(p for p in parts if p)
    return text if len(text) <= width else text[:width - 1] + "…"


def _count(export: dict[str, Any]) -> str:
    progress = export.get("progress")
    if not progress:
        return ""
    total = progress.get("records_total")
    return f"{progress['records_done']:,}" + (f"/{total:,}" if total is not None and export["status"] != READY else "")


SHOWN = ("name", "status", "detail", "export_type", "created_date", "processed_date", "records_count", "file_name",
         "file_size", "sha256", "queue_position", "estimated_ready_date", "expires_date", "download_link", "warnings",
         "notify_url")


def show(client: Client, args: argparse.Namespace, out: Output) -> int:
    export = _get(client, args.id)
    lines = [f"id: {export_id(export)}", f"dataset: {export['_links']['osdi:resource']['href']}"]
    if export["status"] in LIVE and export.get("progress"):
        lines.append(f"progress: {_count(export)} records")
    lines += [f"{key}: {export[key]}" for key in SHOWN if export.get(key) not in (None, "", [])]
    lines += [f"webhook: {n['event']} attempt {n['attempt']} at {n['date']}: {n.get('status_code') or n.get('error')}"
              for n in export.get("notifications", [])]
    out.result(export, "\n".join(lines))
    return 0


def cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = client.request("DELETE", f"{EXPORTS}/{quote(args.id, safe='')}")
    out.result(answer, f"export {args.id} cancelled and deleted")
    return 0
