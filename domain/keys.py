"""Every Redis key exportd uses, in one place (as arq keeps its own in constants.py)."""

PREFIX = "exportd:"


def export(export_id: str) -> str:
    return f"{PREFIX}export:{export_id}"


EXPORTS_ALL = PREFIX + "exports"  # sorted set: export id by creation time


def exports_of(user: str) -> str:
    return f"{PREFIX}exports:user:{user}"  # sorted set: one user's export ids by creation time


def cancel(export_id: str) -> str:
    return f"{PREFIX}cancel:{export_id}"  # set while a deleted export's worker must stop


EXPORTS_READY = PREFIX + "exports:ready"  # sorted set: ready export id by expiry time
LEASES = PREFIX + "leases"  # sorted set: processing export id by the time its lease runs out

USERS = PREFIX + "users"  # hash: user name -> JSON {name, admin, created}


def token(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"  # string: user name owning the token with this hash


def user_tokens(user: str) -> str:
    return f"{PREFIX}tokens:user:{user}"  # set: token hashes of a user


def rate(user: str, window: int) -> str:
    return f"{PREFIX}rate:{user}:{window}"  # counter: exports created by a user in a one-minute window


def dataset(dataset_id: str) -> str:
    return f"{PREFIX}dataset:{dataset_id}"


DATASETS = PREFIX + "datasets"  # sorted set: dataset id by creation time

WORKERS = PREFIX + "workers"  # sorted set: worker name by last heartbeat (unix seconds)


def export_job_id(export_id: str, attempt: int) -> str:
    """The arq job id of an export's attempt: deterministic, so enqueuing an attempt twice
    runs it once, and fresh for each new attempt (arq keeps a dead job's id busy for hours)."""
    return f"export:{export_id}:{attempt}"
