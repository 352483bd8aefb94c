"""The demo datasets `make run` loads: generated deterministically, loaded once however often
`run` starts, and read back through the catalog with the fields they declare. The large one is
generated here at a small size: the tests never build its 1.5M records."""
from __future__ import annotations

from types import SimpleNamespace

from domain import demo, demo_air, manage, queue
from domain.datasets import DatasetRepo

ROWS = 20_000


def small_air() -> SimpleNamespace:
    """demo_air as `run` sees it (DATASET_ID, TITLE, DESCRIPTION, table()), at ROWS records."""
    return SimpleNamespace(DATASET_ID=demo_air.DATASET_ID, TITLE=demo_air.TITLE, DESCRIPTION=demo_air.DESCRIPTION,
                           table=lambda: demo_air.table(ROWS))


def test_the_air_quality_readings_are_the_same_for_the_same_seed():
    first, again, other = demo_air.table(5_000), demo_air.table(5_000), demo_air.table(5_000, seed=1)
    assert first.equals(again) and not first.equals(other)
    assert first.num_rows == 5_000 and first.column_names == [f.name for f in demo_air.FIELDS]
    times = first["measured_at"].to_pylist()
    assert times == sorted(times) and times[0].year == times[-1].year == 2024  # in time order, as a feed
    alerts = first.filter(first["alert"])
    assert 0 < alerts.num_rows < first.num_rows
    assert set(first["pollutant"].unique().to_pylist()) == {p[0] for p in demo_air.POLLUTANTS}
    assert set(first["city"].unique().to_pylist()) <= {c[0] for c in demo_air.CITIES}
    assert 0 < first["geo_point_2d"].null_count < 100
    assert demo_air.ROWS >= 1_000_000  # what `make run` loads: large enough to watch an export run


async def test_loading_the_demos_twice_loads_them_once(settings, monkeypatch, capsys):
    monkeypatch.setattr(manage, "DEMOS", (demo, small_air()))
    await manage.load_demo(settings)
    state = queue.connect(settings.redis_url)
    try:
        repo = DatasetRepo(state)
        loaded = {d: await repo.get(d) for d in (demo.DATASET_ID, demo_air.DATASET_ID)}
        await manage.load_demo(settings)
        out = capsys.readouterr().out
        assert out.count("already loaded") == 2, out
        for dataset_id, dataset in loaded.items():
            again = await repo.get(dataset_id)
            assert (again.version, again.dataset_uid) == (dataset.version, dataset.dataset_uid)
        air = loaded[demo_air.DATASET_ID]
        assert air.records_count == ROWS and air.title == demo_air.TITLE
        assert [(f.name, f.type) for f in air.fields] == [(f.name, f.type) for f in demo_air.FIELDS]

        await state.flushdb()  # a fresh Redis: --small loads only demo-events
        await manage.load_demo(settings, small=True)
        assert (await repo.get(demo.DATASET_ID)).records_count == demo.ROWS
        assert demo_air.DATASET_ID not in [d.dataset_id for d in await repo.list()]
    finally:
        await state.aclose()
