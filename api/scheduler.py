"""The clock sweep, every ``TZXM_SWEEP_SECONDS``: scheduled in the background of a server
process (``tzxm serve``), or run in the foreground as a process of its own (``tzxm
sweeper``, beside a production WSGI server serving ``api.wsgi``, which does not sweep).
Several processes may sweep at once: on PostgreSQL they share the work (``SKIP LOCKED``);
SQLite serializes them."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from engine import ratelimit
from engine.db import unit_of_work
from engine.sweep import sweep

log = logging.getLogger(__name__)


def _sweep_job(app: Flask) -> Callable[[], None]:
    """One sweep and the portal limit's housekeeping; a failure is logged and the next tick retries."""
    platform = app.extensions["tzxm"]
    portal_rate = app.extensions["tzxm_portal_settings"][0]

    def run() -> None:
        try:
            sweep(platform)
            with unit_of_work(platform.session_factory) as session:
                ratelimit.purge(session, now=platform.clock.now(), rate=portal_rate)  # past windows of the portal limit
        except Exception:  # noqa: BLE001 - a failed sweep is retried on the next tick
            log.exception("sweep failed; it will be retried")

    return run


def start_sweeper(app: Flask) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(_sweep_job(app), "interval", seconds=app.config["TZXM_SWEEP_SECONDS"], max_instances=1,
                      coalesce=True)
    scheduler.start()
    return scheduler


def run_sweeper(app: Flask, stop: threading.Event) -> int:
    """Sweep now and every ``TZXM_SWEEP_SECONDS`` until ``stop`` is set (a sweep under way
    finishes first); returns how many sweeps ran."""
    job, seconds, sweeps = _sweep_job(app), app.config["TZXM_SWEEP_SECONDS"], 0
    while not stop.is_set():
        job()
        sweeps += 1
        stop.wait(seconds)
    return sweeps
