"""gunicorn settings for `deckchat serve` (or `gunicorn -c python:deckchat.gunicorn_conf deckchat.wsgi:app`).

Everything comes from the environment (see the README's configuration table). The app is never preloaded:
each worker builds it after the fork, and the engine (the model, with DECKCHAT_ENGINE=hf) starts loading in
the worker once it is up, in a background thread, so /healthz answers while /readyz waits for the model.
"""
from __future__ import annotations

import logging
import os
import signal

from deckchat.serving import IN_PROCESS_ENGINES, plan_serving

_plan = plan_serving(os.environ)
if _plan.engine not in IN_PROCESS_ENGINES:
    # Here torch only embeds short questions; one thread per op keeps one chat question from taking every
    # core from the requests around it. Set OMP_NUM_THREADS to choose otherwise.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

wsgi_app = "deckchat.wsgi:app"
bind = [os.environ.get("DECKCHAT_BIND", "127.0.0.1:8000")]
worker_class = "gthread"
workers = _plan.workers
threads = _plan.threads
graceful_timeout = _plan.grace_seconds
timeout = 60  # gthread workers report liveness from their main loop, so long streams do not trip this
keepalive = 5
preload_app = False  # the model must never load in the master: CUDA does not survive fork
proc_name = "deckchat"
control_socket_disable = True  # unused, and two servers on one host would fight over its default path
accesslog = None  # the app writes one access line per request, with its request id (observability.py)
_formatter = ({"()": "deckchat.web.observability.JsonFormatter"}
              if os.environ.get("DECKCHAT_LOG_FORMAT", "json") == "json"
              else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"main": _formatter},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main",
                             "stream": "ext://sys.stderr"}},
    "root": {"level": os.environ.get("DECKCHAT_LOG_LEVEL", "INFO").upper(), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["console"], "propagate": False},
        "alembic": {"level": "WARNING"},
    },
}
log = logging.getLogger("deckchat.serve")


def on_starting(server) -> None:
    """Say what shape this server runs in, and why not another."""
    log.info("starting", extra={"engine": _plan.engine, "workers": _plan.workers, "threads": _plan.threads,
                                "grace_seconds": _plan.grace_seconds})
    for warning in _plan.warnings:
        log.warning(warning)


def when_ready(server) -> None:
    """Log the listening addresses once the master is ready to fork workers."""
    log.info("listening", extra={"bind": [str(lsock) for lsock in server.LISTENERS]})


def post_worker_init(worker) -> None:
    """In the worker, after the fork: start the engine and mark the worker draining on SIGTERM."""
    from deckchat.web.health import DRAINING  # noqa: PLC0415

    app = worker.wsgi
    try:
        from deckchat.ml.runtime import get_runtime  # noqa: PLC0415
    except ImportError:
        get_runtime = None
    if get_runtime is not None:
        get_runtime(app).start()

    def _drain(sig, frame) -> None:
        # /readyz turns 503 at once; gunicorn then stops accepting and lets open streams finish.
        DRAINING.set()
        worker.handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, _drain)
    signal.siginterrupt(signal.SIGTERM, False)


def worker_exit(server, worker) -> None:
    """Stop the engine's thread when the worker ends (after open requests finished or the grace ran out)."""
    runtime = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("deckchat.runtime")
    if runtime is not None:
        runtime.close()
