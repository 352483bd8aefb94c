"""Every Redis key exportd uses, in one place (as arq keeps its own in constants.py)."""

PREFIX = "exportd:"


def export(export_id: str) -> str:
    return f"{PREFIX}export:{export_id}"


EXPORTS_ALL = PREFIX + "exports"  # sorted set: export id by creation time


STATUS_ANCHOR = PREFIX + "export-status"  # pub/sub channel published by nobody (api/waiting.py)


def status_changes(export_id: str) -> str:
    return f"{PREFIX}export-status:{export_id}"  # pub/sub channel: the export's id at each change of status, and as it goes


def exports_of(user: str) -> str:
    return f"{PREFIX}exports:user:{user}"  # sorted set: one user's export ids by creation time


def exports_for(dataset_id: str) -> str:
    return f"{PREFIX}exports:dataset:{dataset_id}"  # sorted set: export ids of one dataset by creation time


def exports_in(status: str) -> str:
    return f"{PREFIX}exports:status:{status}"  # sorted set: export ids in a status, by when they entered it


def cancel(export_id: str) -> str:
    return f"{PREFIX}cancel:{export_id}"  # set while a deleted export's worker must stop


SERVED = PREFIX + "owners:served"  # sorted set: owner class ("u:<name>", "jobs") by when a worker last took its job


def sent_bytes(export_id: str) -> str:
    return f"{PREFIX}sent:{export_id}"  # string, expiring: JSON byte spans of the file sent (domain/downloaded.py)


EXPORTS_READY = PREFIX + "exports:ready"  # sorted set: ready export id by expiry time
LEASES = PREFIX + "leases"  # sorted set: processing export id by the time its lease runs out

USERS = PREFIX + "users"  # hash: user name -> JSON {name, admin, created}
WEBHOOK_SALTS = PREFIX + "webhook-salts"  # hash: user name -> the salt their webhook secret is derived with


def token(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"  # string: user name owning the token with this hash


def user_tokens(user: str) -> str:
    return f"{PREFIX}tokens:user:{user}"  # set: token hashes of a user


def rate(user: str, window: int) -> str:
    return f"{PREFIX}rate:{user}:{window}"  # counter: exports created by a user in a one-minute window


def dataset(dataset_id: str) -> str:
    return f"{PREFIX}dataset:{dataset_id}"


DATASETS = PREFIX + "datasets"  # sorted set: dataset id by creation time

METRICS = PREFIX + "metrics"  # hash: counters and histogram buckets (domain/metrics.py)
WORKERS = PREFIX + "workers"  # sorted set: worker name by last heartbeat (unix seconds)
REPLICATION_MARK = PREFIX + "replication-mark"  # counter: written before a WAIT (domain/redis_clients.py)
HEALTH_PROBE = PREFIX + "health-probe"  # string, expiring: /health's write, to learn whether Redis takes writes


def export_job_id(export_id: str, attempt: int) -> str:
    """The arq job id of an export's attempt: deterministic, so enqueuing an attempt twice
    runs it once, and fresh for each new attempt (arq keeps a dead job's id busy for hours)."""
    return f"export:{export_id}:{attempt}"

def notify_job_id(export_id: str, status: str, attempt: int) -> str:
    """The arq job id of one attempt at telling an export's change into `status`: enqueuing
    it twice runs it once, so a change is told once however often it is made to be."""
    return f"notify:{export_id}:{status}:{attempt}"


# The management API v2 (api/management, domain/jobs.py, domain/files.py, domain/alternative_exports.py).
PASSWORDS = PREFIX + "passwords"  # hash: user name -> scrypt hash of the password (HTTP Basic)


def dataset_uid(uid: str) -> str:
    return f"{PREFIX}dataset-uid:{uid}"  # string: dataset id of the dataset with this uid


def dataset_status(uid: str) -> str:
    return f"{PREFIX}dataset-status:{uid}"  # hash: status, job_id, since, message


def dataset_changes(uid: str) -> str:
    return f"{PREFIX}dataset-changes:{uid}"  # list: JSON change objects, oldest first


def dataset_resources(uid: str) -> str:
    return f"{PREFIX}dataset-resources:{uid}"  # hash: resource uid -> JSON resource


def dataset_versions(uid: str) -> str:
    return f"{PREFIX}dataset-versions:{uid}"  # hash: version uid -> JSON saved version


def alternative_exports(uid: str) -> str:
    return f"{PREFIX}alternative-exports:{uid}"  # hash: export uid -> JSON alternative export


def realtime_log(uid: str) -> str:
    return f"{PREFIX}realtime:{uid}"  # list: JSON [seq, record, received] pushed records (recovery data)


def realtime_seq(uid: str) -> str:
    return f"{PREFIX}realtime-seq:{uid}"  # counter: last sequence number given to a pushed record


def push_key(key_hash: str) -> str:
    return f"{PREFIX}push-key:{key_hash}"  # string: dataset uid whose push key has this SHA-256


def mjob(job_id: str) -> str:
    return f"{PREFIX}mjob:{job_id}"  # hash: a management processing job (domain/jobs.py)


def mjob_arq_id(job_id: str) -> str:
    return f"mjob:{job_id}"  # the arq job id of a management job


def file(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}"  # string: JSON uploaded file (domain/files.py)


FILES = PREFIX + "files"  # sorted set: file id by upload time
FILE_NAMES = PREFIX + "file-names"  # hash: file name -> id of the latest file uploaded under it


def reuses(dataset_uid: str) -> str:
    return f"{PREFIX}reuses:{dataset_uid}"  # hash: reuse id -> JSON


def feedback(dataset_uid: str) -> str:
    return f"{PREFIX}feedback:{dataset_uid}"  # list: feedback entries, oldest first


def shared(digest: str) -> str:
    return f"{PREFIX}shared:{digest}"  # string: storage key of the file identical exports share


def shared_file(file_key: str) -> str:
    return f"{PREFIX}sharedfile:{file_key}"  # hash: a shared export file's name, size, records, digest


def file_refs(file_key: str) -> str:
    return f"{PREFIX}filerefs:{file_key}"  # set: exports whose link serves this file
