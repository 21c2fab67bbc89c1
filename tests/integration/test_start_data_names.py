"""The deploy checks allow a diagram's conditions and timers to read the data the
platform starts an instance with (``diagram_checks.PLATFORM_START_DATA``); the runtime
builds that data (``start_project``, ``_launch_matters``). The two must say the same, or
a diagram reading a name the platform gives is refused, or one reading a name it no
longer gives deploys and fails at run time. On SQLite and PostgreSQL."""
from __future__ import annotations

from engine import spiff_adapter
from engine.diagram_checks import PLATFORM_START_DATA
from tests.integration.test_workflow_api import LAND_PROJECT, to_matters


def test_the_data_instances_start_with_is_what_the_deploy_checks_allow(client, token, monkeypatch):
    started = []
    start = spiff_adapter.start

    def recording(spec, data, **kwargs):  # the adapter's own start, called through
        started.append(set(data))
        return start(spec, data, **kwargs)

    monkeypatch.setattr(spiff_adapter, "start", recording)
    to_matters(client, token, **LAND_PROJECT)
    assert len(started) >= 2  # the master and at least one matter's procedure
    assert set().union(*started) == PLATFORM_START_DATA
