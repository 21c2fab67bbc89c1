"""APScheduler runs the sweep every few seconds in each server process."""
from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from engine import ratelimit
from engine.db import unit_of_work
from engine.sweep import sweep

log = logging.getLogger(__name__)


def start_sweeper(app: Flask) -> BackgroundScheduler:
    platform = app.extensions["tzxm"]
    portal_rate = app.extensions["tzxm_portal_settings"][0]

    def run() -> None:
        try:
            sweep(platform)
            with unit_of_work(platform.session_factory) as session:
                ratelimit.purge(session, now=platform.clock.now(), rate=portal_rate)  # past windows of the portal limit
        except Exception:  # noqa: BLE001 - a failed sweep is retried on the next tick
            log.exception("sweep failed; it will be retried")

    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(run, "interval", seconds=app.config["TZXM_SWEEP_SECONDS"], max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
