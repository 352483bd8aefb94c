"""The contract between exportd and arq's private surface. worker/prompt_worker.py overrides
arq's Worker._poll_iteration and _release_sem_dec_counter_on_complete and uses its slots and
tasks; worker/sweep.py and domain/queue.py use arq's key prefixes. None of that is arq's public
API, so this test pins it: the arq version, every private name used, and the source of each
arq method whose behaviour the overrides copy or rely on. On another arq it fails loudly, naming
what changed: read arq's new code beside prompt_worker.py, mend what differs, then add that
version's fingerprints here (and widen the pin in pyproject.toml)."""
from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version

import arq.constants
import pytest
from arq.connections import RedisSettings
from arq.worker import Worker

# arq's methods prompt_worker.py copies (start_jobs, the body of _poll_iteration) or calls as
# they were, by the sha256 of their source, per supported version
FINGERPRINTS = {
    "0.28.0": {
        "_poll_iteration": "f8d39d823a0a59f2",
        "start_jobs": "b45797cfa40bed7f",
        "_release_sem_dec_counter_on_complete": "0ed101482e942c33",
        "_cancel_aborted_jobs": "54575eaf8682f95b",
        "run_job": "589a19059ff84ee7",
    },
}
# what prompt_worker.py reads or sets on a Worker
ATTRIBUTES = ("max_jobs", "job_counter", "burst", "max_burst_jobs", "allow_pick_jobs", "allow_abort_jobs",
              "queue_read_limit", "tasks", "queue_name", "in_progress_timeout_s", "_queue_read_offset", "sem")
METHODS = ("_jobs_started", "_cancel_aborted_jobs", "heart_beat", "run_job", "_poll_iteration",
           "_release_sem_dec_counter_on_complete", "async_run", "close")


def fingerprint(name: str) -> str:
    return hashlib.sha256(inspect.getsource(getattr(Worker, name)).encode()).hexdigest()[:16]


def test_the_installed_arq_is_one_whose_private_surface_was_read():
    installed = version("arq")
    assert installed in FINGERPRINTS, (
        f"arq {installed} is not one prompt_worker.py was checked against ({', '.join(FINGERPRINTS)}); "
        "see this module's docstring")
    changed = {name: fingerprint(name) for name, known in FINGERPRINTS[installed].items() if fingerprint(name) != known}
    assert not changed, f"arq {installed}'s code differs from what prompt_worker.py copies: {changed}"


def test_the_key_prefixes_the_sweeps_remove():
    assert (arq.constants.job_key_prefix, arq.constants.in_progress_key_prefix, arq.constants.retry_key_prefix) == (
        "arq:job:", "arq:in-progress:", "arq:retry:")


@pytest.mark.parametrize("name", METHODS)
def test_every_method_the_worker_calls_or_overrides(name):
    assert callable(getattr(Worker, name, None)), f"arq's Worker has no {name} any more"


async def test_every_attribute_the_worker_reads():
    async def job(ctx) -> None:
        pass

    worker = Worker(functions=[job], redis_settings=RedisSettings(), burst=True, handle_signals=False)
    missing = [name for name in ATTRIBUTES if not hasattr(worker, name)]
    assert not missing, f"arq's Worker no longer has {missing}"
    assert inspect.signature(Worker.run_job).parameters.keys() >= {"job_id", "score"}
