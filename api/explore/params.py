"""Query parameters as the Explore API takes them: an optional API key, limit/offset bounds,
repeated parameters (where, refine, exclude), and booleans spelled true/True/1."""
from __future__ import annotations

from aiohttp import web

from api.auth import presented_token
from api.bodies import MAX_QUERY_INT, query_int
from api.keys import DATASETS, USERS
from domain.datasets import Dataset
from domain.errors import Invalid, NotFound
from domain.users import User

MAX_WINDOW = 10_000  # offset + limit stays below it, as OpenDataSoft
MAX_GROUPS = 20_000  # groups one answer reaches at most (offset + limit with group_by), as OpenDataSoft


async def explorer(request: web.Request) -> User | None:
    """The caller, if they sent a key (Authorization: Apikey …, ?apikey=, or OSDI-API-Token);
    public datasets need none. A wrong key is a 401, not silently anonymous."""
    token = presented_token(request) or request.query.get("apikey")
    if not token:
        return None
    return await request.app[USERS].authenticate(token)


async def visible_dataset(request: web.Request) -> Dataset:
    """The dataset in the path, if it is published and this caller may see it (else 404)."""
    dataset_id = request.match_info["dataset_id"]
    try:
        dataset = await request.app[DATASETS].get(dataset_id)
    except NotFound:
        raise NotFound(f"no dataset {dataset_id!r}", error_code="UnknownDatasetError") from None
    if not dataset.published:  # unpublished (management API): not in the Explore API at all
        raise NotFound(f"no dataset {dataset_id!r}", error_code="UnknownDatasetError")
    if dataset.visibility != "domain":
        user = await explorer(request)
        if user is None or not user.admin:
            raise NotFound(f"no dataset {dataset_id!r}", error_code="UnknownDatasetError")
    return dataset


def integer(request: web.Request, name: str, default: int, lowest: int, highest: int = MAX_QUERY_INT) -> int:
    return query_int(request, name, default, lowest, highest, error_code="InvalidParameter")


def page(request: web.Request, default_limit: int = 10, max_limit: int = 100,
         reach: int = MAX_WINDOW - 1) -> tuple[int, int]:
    """(limit, offset), with offset + limit at most `reach` (9,999 records; 20,000 groups)."""
    limit = integer(request, "limit", default_limit, 0, max_limit)
    offset = integer(request, "offset", 0, 0)
    if offset + limit > reach:
        raise Invalid(f"offset + limit must be at most {reach}; use an export for more",
                      error_code="InvalidParameter")
    return limit, offset


def repeated(request: web.Request, name: str) -> list[str]:
    return [v for v in request.query.getall(name, []) if v.strip()]


def flag(request: web.Request, *names: str) -> bool | None:
    """A boolean parameter under any of its names; None when absent."""
    for name in names:
        raw = request.query.get(name)
        if raw is not None:
            lowered = raw.strip().lower()
            if lowered in ("true", "1", "yes", "on", ""):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise Invalid(f"parameter {name!r} must be true or false, not {raw!r}", error_code="InvalidParameter")
    return None
