"""The application for a production WSGI server (gunicorn, uWSGI): ``gunicorn
'api.wsgi:application'``. It serves requests only: the clock sweep runs in a process of
its own (``tzxm sweeper``), so any number of server workers can be started and stopped
without starting or stopping the platform's clocks. Settings come from the environment,
checked at import (a bad one stops the worker, its error naming it); log lines carry
the request id, as under ``tzxm serve``."""
from __future__ import annotations

from api import create_app, request_id

request_id.configure_logging()
application = create_app()
