"""Settings are declared once (domain/settings.py: name, variable, default, bounds, meaning),
and the README's Configuration table is checked against them: every setting there with its
default, nothing there that is not a setting."""
from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from domain.settings import Settings, SettingsError, variable

README = Path(__file__).resolve().parent.parent / "README.md"
NAME = re.compile(r"`((?:EXPORTD|AWS)_[A-Z0-9_]+)`")


def table() -> dict[str, str]:
    """Variable → the default cell of its row, from the README's Configuration section."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and NAME.search(cells[0]):
            names = NAME.findall(cells[0])
            defaults = [d.strip() for d in cells[1].split(",")] if len(names) > 1 else [cells[1]]
            rows.update(zip(names, defaults))
    return rows


def test_the_readme_documents_every_setting_with_its_default():
    documented = table()
    declared = {variable(f): f for f in fields(Settings)}
    assert set(documented) == set(declared), (
        f"undocumented: {sorted(set(declared) - set(documented))}; not settings: {sorted(set(documented) - set(declared))}")
    for name, item in declared.items():
        cell = documented[name]
        if item.default is MISSING or item.default in (None, "", ()):
            assert cell.startswith(("unset", "generated", "`./var`")), (name, cell)
        else:
            assert f"`{item.default}`" in cell, (name, item.default, cell)


def test_every_setting_has_a_meaning():
    assert all(f.metadata.get("doc") for f in fields(Settings))


@pytest.mark.parametrize("name,value", [("EXPORTD_PORT", "0"), ("EXPORTD_PORT", "eighty"), ("EXPORTD_WORKER_JOBS", "0"),
                                        ("EXPORTD_S3_DOWNLOADS", "copy"), ("EXPORTD_TRUSTED_PROXIES", "10.0.0.0/8, nope"),
                                        ("EXPORTD_QUERY_MEMORY_MB", "1"), ("EXPORTD_EXPORT_TTL", "0"),
                                        ("EXPORTD_REDIS_SENTINELS", "10.0.0.1"), ("EXPORTD_REDIS_SENTINELS", "a:1,b:99999"),
                                        ("EXPORTD_REDIS_REPLICAS", "-1")])
def test_values_out_of_bounds_are_refused_naming_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), name: value})


def test_unset_or_empty_variables_take_the_defaults(tmp_path):
    settings = Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_PORT": "", "EXPORTD_TRUSTED_PROXIES": ""})
    assert (settings.port, settings.trusted_proxies, settings.queue_name) == (8080, (), "exportd:queue")
    assert Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_TRUSTED_PROXIES": "10.0.0.0/8,::1"}
                             ).trusted_proxies == ("10.0.0.0/8", "::1")


def test_sentinel_addresses_are_read_as_host_and_port(tmp_path):
    settings = Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path),
                                  "EXPORTD_REDIS_SENTINELS": "10.0.0.11:26379, sentinel-b:26380,[::1]:26381"})
    assert settings.redis_sentinels == (("10.0.0.11", 26379), ("sentinel-b", 26380), ("::1", 26381))
    assert "redis_url" not in repr(settings) and "redis_sentinel_password" not in repr(settings)  # they may hold passwords
