"""The functions deploy-time checks allow are exactly the ones the runtime binds."""
from __future__ import annotations

from engine import spiff_adapter
from engine.procedures import PLATFORM_FUNCTIONS
from engine.runtime import Run


def test_the_runtime_binds_every_function_deploy_allows_and_no_other():
    scope = spiff_adapter.ScriptScope(task_id="t", element_id="e", process_id="p", scope_id=None, data={})
    bound = Run(session=None, now=None, row=None, project=None, actor="test").functions(scope)
    assert set(bound) == set(PLATFORM_FUNCTIONS)
