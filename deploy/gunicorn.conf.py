"""gunicorn settings for Red Steward: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`."""
import gc
import multiprocessing
import os

from prometheus_client import multiprocess

# Behind nginx on the same host; nginx forwards the client address (ProxyFix reads it).
bind = os.environ.get("REDSTEWARD_BIND", "127.0.0.1:8000")
# The webhook mostly waits on the database: two workers per core, plus one.
workers = int(os.environ.get("REDSTEWARD_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# WeChat gives up after 5 s and retries; a worker stuck longer than 4 s is killed and
# replaced, and the retry is answered by another worker (the de-dup store keeps it exact).
timeout = 4
graceful_timeout = 10
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
# The master builds the app once and forks the workers from it, so the code, the templates and
# the word-segmentation dictionary sit in memory once, shared copy-on-write by every worker
# (a recycled worker starts at once, too). A code change then needs `systemctl restart`: HUP
# forks new workers from the same loaded code. REDSTEWARD_PRELOAD=0 builds the app in each
# worker instead (more memory; HUP then loads new code).
preload_app = os.environ.get("REDSTEWARD_PRELOAD", "1") != "0"
# One JSON access line per webhook call comes from the app; gunicorn's own log stays off.
accesslog = None
errorlog = "-"
loglevel = "info"
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """Clears metric files of a previous run (PROMETHEUS_MULTIPROC_DIR must be set, see the unit)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            os.remove(os.path.join(path, name))


def pre_fork(server, worker):
    """Moves everything the master built out of the collector's reach before a worker is forked.

    A collection in a worker would otherwise write to every object inherited from the master and
    so copy the pages they sit on; frozen, they stay shared. (The database engine and the Redis
    clients start their connections afresh in each worker: see bot/db.py.)
    """
    gc.freeze()


def child_exit(server, worker):
    """Folds a dead worker's gauges away so /metrics stays right across restarts."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
