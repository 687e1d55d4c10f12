"""``lienthong demo --federated`` as README runs it: three hubs, one command, nothing left."""

from __future__ import annotations

import subprocess

from tests.conftest import make_settings
from tests.support.cli import env_for, lienthong, no_noise


def _demo_vhosts() -> set[str]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
    )
    return {v for v in listed.stdout.split() if v.startswith("lt-demo-")}


def test_the_federated_demo_runs_and_cleans_up(tmp_path):
    settings = make_settings(tmp_path)
    before = _demo_vhosts()
    out = lienthong(settings, "demo", "--federated", env=env_for(settings, COLUMNS="160"))
    no_noise(out)
    assert "Federated demo finished: every step checked out." in out.stdout
    assert "H49 → national → H41" in out.stdout
    assert out.stdout.count("witnessed") >= 4
    assert _demo_vhosts() <= before  # its virtual hosts are gone
