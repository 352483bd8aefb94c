"""GET …/datasets/{dataset_id}/snapshots: the versions saved with the management API's
save_version, each with its name, time, record count and fields; GET …/versions: the versions
it was published as (an exportd extension). Either may be a delta export's `changes_since`."""
from __future__ import annotations

from aiohttp import web

from api.explore.params import visible_dataset
from api.explore.views import catalog_base, json_response, link
from api.keys import STATE
from domain.delta import PUBLISHING
from domain.managed_datasets import ManagedDatasets


async def snapshots(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    saved = await ManagedDatasets(request.app[STATE]).versions(dataset.dataset_uid)
    href = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/snapshots"
    return json_response({
        "total_count": len(saved),
        "links": [link("self", href)],
        "results": [{"snapshot_id": s["version_uid"], "name": s["name"], "created": s["created"],
                     "records_count": s["records_count"], "version": s["version"], "fields": s["fields"]} for s in saved],
    })


async def versions(request: web.Request) -> web.Response:
    """The versions the dataset was published as, oldest first, the current one marked."""
    dataset = await visible_dataset(request)
    changes = await ManagedDatasets(request.app[STATE]).changes(dataset.dataset_uid)
    published = [c for c in changes if c.get("type") in PUBLISHING and c["details"].get("version")]
    href = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/versions"
    return json_response({
        "total_count": len(published),
        "links": [link("self", href)],
        "results": [{"version": c["details"]["version"], "published": c["timestamp"],
                     "records_count": c["details"].get("records_count"), "current": c["details"]["version"] == dataset.version}
                    for c in published],
    })
