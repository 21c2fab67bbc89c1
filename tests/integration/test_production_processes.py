"""A production start: a WSGI server serving ``api.wsgi`` (which does not sweep) and the
clock's own process, ``tzxm sweeper``, stopped cleanly by SIGTERM (README "Two commands")."""
from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from api.request_id import RequestContext
from api.scheduler import run_sweeper
from engine.db import make_engine, make_session_factory
from engine.health import LAST_SWEEP_KEY
from engine.models import PlatformState

ROOT = Path(__file__).resolve().parents[2]


def _last_sweep(factory) -> str | None:
    with factory() as s:
        return s.scalar(select(PlatformState.value).where(PlatformState.key == LAST_SWEEP_KEY))


def _until(condition, tries: int = 2000) -> bool:
    """Whether ``condition()`` holds within about ``tries`` hundredths of a second (another
    thread or process doing its work: nothing here waits on the platform's clock)."""
    for _ in range(tries):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False


def test_the_foreground_sweeper_sweeps_until_told_to_stop(app, platform):
    app.config["TZXM_SWEEP_SECONDS"] = 0.01
    stop, done = threading.Event(), []
    worker = threading.Thread(target=lambda: done.append(run_sweeper(app, stop)))
    worker.start()
    assert _until(lambda: _last_sweep(platform.session_factory) is not None)
    stop.set()
    worker.join(30)
    assert not worker.is_alive() and done[0] >= 1
    assert _last_sweep(platform.session_factory) == platform.clock.now().isoformat()


def test_tzxm_sweeper_is_a_process_of_its_own_that_sigterm_stops(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    assert CliRunner().invoke(main, ["seed-organisation"]).exit_code == 0
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "s" * 40, "TZXM_SWEEP_SECONDS": "0.05",
           "TZXM_FILES_DIR": str(tmp_path / "files"), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "sweeper"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    engine = make_engine(url)
    try:
        assert _until(lambda: _last_sweep(make_session_factory(engine)) is not None), process.stderr.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        engine.dispose()
    assert process.returncode == 0, err
    assert out.splitlines()[0] == "sweeping every 0.05 s (stop with SIGTERM or Ctrl-C)"
    assert out.splitlines()[-1].startswith("sweeper stopped after ") and "Traceback" not in err


def test_the_wsgi_application_serves_without_sweeping_and_logs_the_request_id(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "w" * 40)
    import api.wsgi as wsgi
    wsgi = importlib.reload(wsgi)  # a second worker start in the same process: still one log handler
    application = wsgi.application
    response = application.test_client().get("/api/v1/health", headers={"X-Request-Id": "gunicorn-1"})
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "gunicorn-1"
    assert response.get_json()["last_sweep_at"] is None  # nothing swept: the sweeper's process does
    ours = [h for h in logging.getLogger().handlers if any(isinstance(f, RequestContext) for f in h.filters)]
    assert len(ours) == 1
    logging.getLogger().removeHandler(ours[0])
    application.extensions["tzxm_engine"].dispose()
