"""`make bench`: the webhook under wrk beside the two anchors, memory per worker, the outbox.

Serves every bot at once, each with gunicorn -w 2 on its own loopback port, and replays
the same signed deliveries (bench/messages.py) with wrk in rounds: one run per bot per
round, back to back, so each ratio compares runs made under the same machine load. Prints
medians and ratios; targets are printed beside the figures, never asserted.
Knobs (environment): BENCH_SECONDS (per run, default 10), BENCH_RUNS (rounds, default 5),
BENCH_RESIDENTS (default 50000), BENCH_MEMORY_MESSAGES (default 100000, 0 skips),
BENCH_MEMORY_MAX_SECONDS (cap on both memory rounds together, default 300),
BENCH_PG_URL (default rs_bench on 127.0.0.1: databases rs_bench_plain and rs_bench_safe
are created if missing; empty string skips PostgreSQL), BENCH_ONLY (comma-separated target
names; floor-sqlite-plain is bench/floor.py, the server without its conversation logic),
BENCH_OUTBOX_MESSAGES (default 1000), BENCH_OUTBOX_RATE (the limited run, default 100/s), BENCH_PROFILE=1
(py-spy records one Red Steward worker during the first round), BENCH_PRELOAD=0 (Red Steward's
workers build the app themselves instead of forking from a master that preloaded it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = ROOT / "instance" / "bench"
RESULTS = BENCH / "results"
ANCHOR_VENV = BENCH / ".venv"
PY = Path(sys.executable)
sys.path.insert(0, str(ROOT))

from bench import messages  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
RESIDENTS = int(os.environ.get("BENCH_RESIDENTS", "50000"))
MEMORY_MESSAGES = int(os.environ.get("BENCH_MEMORY_MESSAGES", "100000"))
MEMORY_MAX_SECONDS = int(os.environ.get("BENCH_MEMORY_MAX_SECONDS", "300"))
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/rs_bench")
ONLY = [t for t in os.environ.get("BENCH_ONLY", "").split(",") if t]
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
PRELOAD = os.environ.get("BENCH_PRELOAD", "1") != "0"
THREADS, CONNECTIONS = 2, 16
# Enough deliveries that no run replays one (a replay would hit the de-dup cache).
PER_RUN = max(20_000, 4_000 * SECONDS)


def log(text: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    """wrk from Debian's packages, installed when missing."""
    path = shutil.which("wrk")
    if path:
        return path
    log("installing wrk (apt-get install wrk)")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    if subprocess.run(["apt-get", *lock, "install", "-y", "-qq", "wrk"]).returncode != 0:
        subprocess.run(["apt-get", *lock, "update", "-qq"], check=True)
        subprocess.run(["apt-get", *lock, "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def ensure_anchor_venv() -> Path:
    """A separate virtual environment for the WeRoBot anchor, so the app's stays clean."""
    gunicorn = ANCHOR_VENV / "bin" / "gunicorn"
    if not gunicorn.exists():
        log("creating bench/.venv with werobot for the anchor")
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(ANCHOR_VENV / "bin" / "pip"), "install", "-q", "werobot==1.13.1",
                        "gunicorn==27.0.1", "py-spy==0.4.3"], check=True)
    return gunicorn


def ensure_pg(url: str) -> str | None:
    """Creates the bench database when PostgreSQL runs here; None when it cannot be reached."""
    if not url:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}):
                conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL here"
        log(f"PostgreSQL not reachable ({type(exc).__name__}); PostgreSQL targets skipped")
        return None
    finally:
        admin.dispose()
    return url


def fresh_schema(url: str, demo_park: bool = True) -> None:
    """An empty database with every table, and the demo park loaded (unless told not to)."""
    from sqlalchemy import text
    from bot.config import load_settings
    from models import Base, make_engine, make_session_factory, pii
    pii.configure(load_settings(environ={})["app"]["pii_key"])
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    Base.metadata.create_all(engine)
    if demo_park:
        from bot import demo
        with make_session_factory(engine)() as s:
            demo.load(s)
    engine.dispose()


class Server:
    """A gunicorn master with two workers on a loopback port."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict, port: int):
        """Starts gunicorn and waits until it answers."""
        self.name, self.port = name, port
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"127.0.0.1:{port} is taken by another server; stop it before the bench")
        self.log_path = WORK / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Waits until GET /wechat answers the URL verification."""
        ts, nonce = "1700000000", "ready"
        url = (f"http://127.0.0.1:{self.port}/wechat?signature={messages.sign(messages.TOKEN, ts, nonce)}"
               f"&timestamp={ts}&nonce={nonce}&echostr=ok")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{self.name} did not start; see {self.log_path}")

    def workers(self) -> list[int]:
        """The worker processes' ids."""
        out = subprocess.run(["ps", "--ppid", str(self.proc.pid), "-o", "pid="], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def rss_mb(self) -> list[float]:
        """Resident set of each worker, MB."""
        return self._per_worker("status", "VmRSS:")

    def pss_mb(self) -> list[float]:
        """Proportional set of each worker, MB: pages shared with the master and the other worker
        count in part, so the workers' figures add up to what they really take."""
        return self._per_worker("smaps_rollup", "Pss:")

    def _per_worker(self, proc_file: str, field: str) -> list[float]:
        """One kB field of /proc/<worker>/<proc_file> for each worker, in MB."""
        sizes = []
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/{proc_file}").read_text().splitlines():
                if line.startswith(field):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def stop(self) -> None:
        """Stops gunicorn gracefully (SIGTERM to the master)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def wrk(wrk_bin: str, port: int, file: Path, seconds: float, limit: int = 0) -> dict:
    """One wrk run replaying `file`; returns its figures."""
    argv = [wrk_bin, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
            "-s", str(BENCH / "replay.lua"), f"http://127.0.0.1:{port}", "--", str(file), str(limit),
            str(THREADS)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    r = json.loads(line[len("BENCH "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def deliveries_file(mode: str, run: int, count: int = PER_RUN) -> Path:
    """The file of signed deliveries for one run (written once per bench)."""
    path = WORK / f"deliveries-{mode}-{run}-{count}-{RESIDENTS}.txt"
    if not path.exists():
        messages.write(path, count, RESIDENTS, run, mode)
    return path


def targets(pg_url: str | None) -> list[dict]:
    """Every bot to measure: the two anchors, then Red Steward in each configuration (a database each)."""
    anchors = BENCH / "anchors"
    out = [
        {"name": "wechatpy-echo", "mode": "plain",
         "argv": [str(PY.parent / "gunicorn"), "-w", "2", "wechatpy_echo:app"], "cwd": anchors},
        {"name": "werobot", "mode": "plain",
         "argv": [str(ensure_anchor_venv()), "-w", "2", "werobot_echo:app"], "cwd": anchors},
    ]

    def pg_for(mode: str) -> str | None:
        """A PostgreSQL database per mode (both servers run at once); None without PostgreSQL."""
        if not pg_url:
            return None
        from sqlalchemy.engine import make_url
        u = make_url(pg_url)
        return ensure_pg(u.set(database=f"{u.database}_{mode}").render_as_string(hide_password=False))

    for db in ("sqlite", "pg"):
        for mode in ("plain", "safe"):
            url = f"sqlite:///{WORK}/rs-{mode}.sqlite3" if db == "sqlite" else pg_for(mode)
            if url is None:
                continue
            # As deployed, but no recycled workers (it would reset the memory measured) and the
            # default timeout (a request held past 4 s under load is slow, not stuck).
            out.append({"name": f"rs-{db}-{mode}", "mode": mode, "db": url, "cwd": ROOT,
                        "argv": [str(PY.parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "-w", "2",
                                 "--max-requests", "0", "--timeout", "30", "wsgi:app"]})
    # The same server with the conversation logic taken out (bench/floor.py): the stack's ceiling.
    floor = dict(next(t for t in out if t["name"] == "rs-sqlite-plain"), name="floor-sqlite-plain",
                 db=f"sqlite:///{WORK}/floor-plain.sqlite3")
    floor["argv"] = floor["argv"][:-1] + ["bench.floor:create_app()"]
    out.append(floor)
    return [t for t in out if not ONLY or t["name"] in ONLY]


def app_env(target: dict, port: int) -> dict:
    """The environment of a Red Steward server: sandbox, the bench token and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDSTEWARD_")}
    env.update(REDSTEWARD_WECHAT_TOKEN=messages.TOKEN, REDSTEWARD_DATABASE_URL=target["db"],
               REDSTEWARD_APP_PUBLIC_URL=f"http://127.0.0.1:{port}",
               REDSTEWARD_WECHAT_ENCRYPT_MODE=target["mode"], REDSTEWARD_PRELOAD="1" if PRELOAD else "0",
               PROMETHEUS_MULTIPROC_DIR=str(WORK / f"metrics-{target['name']}-{port}"))
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
    if target["mode"] == "safe":
        env["REDSTEWARD_WECHAT_ENCODING_AES_KEY"] = messages.AES_KEY
    return env


def start(wrk_bin: str, target: dict, port: int) -> Server:
    """Starts one bot on a fresh database and warms it up."""
    env = dict(os.environ)
    if "db" in target:
        fresh_schema(target["db"])
        env = app_env(target, port)
    server = Server(target["name"], target["argv"] + ["-b", f"127.0.0.1:{port}"], target["cwd"], env, port)
    wrk(wrk_bin, port, deliveries_file(target["mode"], 0), 2)
    return server


def measure(wrk_bin: str, started: list[tuple[dict, Server]]) -> list[dict]:
    """RUNS rounds; in each, every bot gets one wrk run, back to back, in a rotating order.

    The machine's load changes from minute to minute, so a bot's figure is only compared with
    the anchors' figures from the same round; the table shows medians over the rounds.
    """
    runs: dict[str, list[dict]] = {t["name"]: [] for t, _ in started}
    for n in range(1, RUNS + 1):
        shift = (n - 1) % len(started)
        for target, server in started[shift:] + started[:shift]:
            spy = _profile(server, target) if PROFILE and n == 1 and "db" in target else None
            r = wrk(wrk_bin, server.port, deliveries_file(target["mode"], n), SECONDS)
            if spy:
                spy.wait()
            runs[target["name"]].append(r)
            log(f"  round {n} {target['name']}: {r['rps']:.0f} req/s, p99 {r['p99_us'] / 1000:.1f} ms, "
                f"non-200 {r['non200']}, replayed files {r['wrapped']}")
    echo, robot = runs.get("wechatpy-echo"), runs.get("werobot")
    results = []
    for target, _ in started:
        rs = runs[target["name"]]
        results.append({
            "name": target["name"], "runs": rs,
            "rps": statistics.median(r["rps"] for r in rs),
            "x_echo": statistics.median(a["rps"] / b["rps"] for a, b in zip(rs, echo)) if echo else None,
            "x_robot": statistics.median(a["rps"] / b["rps"] for a, b in zip(rs, robot)) if robot else None,
            "p50_ms": statistics.median(r["p50_us"] for r in rs) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1000,
            "non200": sum(r["non200"] for r in rs) + sum(r["socket_errors"] for r in rs)})
    return results


def memory(wrk_bin: str, target: dict, port: int, rps: float) -> dict:
    """RSS and PSS per worker of a fresh server after MEMORY_MESSAGES messages, and after as many again."""
    server = start(wrk_bin, target, port)
    try:
        out = {"name": target["name"], "before_mb": server.rss_mb(), "before_pss_mb": server.pss_mb()}
        # On a slow or busy machine the time cap wins: the table then says how many were sent.
        count = int(min(MEMORY_MESSAGES, rps * MEMORY_MAX_SECONDS / 2))
        for n, label in ((101, "after_first_mb"), (102, "after_second_mb")):
            file = deliveries_file("plain", n, count)
            seconds = count / max(rps, 1)
            log(f"  memory: ~{count} messages (~{seconds:.0f} s)")
            # Timed, not stopped at a count: a wrk thread stopped early leaves connections open,
            # and a sync worker waiting on one is killed as stuck, which would reset its memory.
            r = wrk(wrk_bin, port, file, seconds)
            out[label] = server.rss_mb()
            out[label.replace("_mb", "_pss_mb")] = server.pss_mb()
            out.setdefault("sent", []).append(r["requests"])
        return out
    finally:
        server.stop()


def _profile(server: Server, target: dict):
    """py-spy records one worker for one run; the flame graph lands in bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    spy = str(ANCHOR_VENV / "bin" / "py-spy")
    out = RESULTS / f"profile-{target['name']}.svg"
    log(f"  profiling worker {server.workers()[0]} -> {out}")
    return subprocess.Popen([spy, "record", "-p", str(server.workers()[0]), "-d", str(SECONDS), "-o",
                             str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ops_overhead(n: int = 5000) -> float:
    """Microseconds the metrics and the access line add to one webhook call, measured in-process."""
    import logging
    from wechatpy import parse_message
    from bot import create_app, ops
    app = create_app({"database": {"url": f"sqlite:///{WORK}/ops-overhead.sqlite3"}})
    logging.getLogger("redsteward.access").handlers[:] = [logging.NullHandler()]
    logging.getLogger("redsteward.access").propagate = False
    msg = parse_message(next(messages.deliveries(2 * messages.BLOCK, RESIDENTS, 0))[1])
    with app.test_request_context("/wechat", method="POST"):
        started = time.perf_counter()
        for _ in range(n):
            ops.g.ops_started = time.perf_counter()
            ops._observe("handled", msg, None)
            ops._access_line(app.response_class("success"))
        return (time.perf_counter() - started) / n * 1e6


def table(results: list[dict]) -> str:
    """The results as a text table; ratios are medians of each round's ratio to the anchors."""
    lines = [f"{'target':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'× echo':>9}{'× WeRoBot':>11}{'errors':>8}"]
    for r in results:
        ratios = "".join(f"{x:>{w}.2f}" if x is not None else f"{'-':>{w}}"
                         for x, w in ((r["x_echo"], 9), (r["x_robot"], 11)))
        lines.append(f"{r['name']:<18}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{ratios}{r['non200']:>8}")
    return "\n".join(lines)


TARGETS_TEXT = """targets (compared, not asserted):
  conversation step (rs-*-plain) >= 0.50x wechatpy-echo and >= 2.00x werobot, p99 < 50 ms
  (floor-sqlite-plain is no target: the same server and database writes with no conversation logic)
  safe mode (rs-*-safe)          >= 0.40x wechatpy-echo
  RSS per worker after 100,000 messages < 150 MB, no growth in the second 100,000
  outbox >= 200 template messages/s with no rate limit; busiest second <= the configured rate"""


def main() -> int:
    """Starts every bot, measures them in interleaved rounds, then memory and the outbox; prints the tables."""
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    wrk_bin = ensure_wrk()
    pg_url = ensure_pg(PG_URL)
    log(f"bench: {RUNS} rounds x {SECONDS} s per bot, {RESIDENTS} residents, wrk -t{THREADS} -c{CONNECTIONS}")
    started: list[tuple[dict, Server]] = []
    try:
        for port, target in enumerate(targets(pg_url), start=5190):
            log(f"{target['name']} on 127.0.0.1:{port}")
            started.append((target, start(wrk_bin, target, port)))
        results = measure(wrk_bin, started)
    finally:
        for _, server in started:
            server.stop()
    print(f"\nwebhook, gunicorn -w 2, {RUNS} rounds of {SECONDS} s per bot, bots interleaved; medians "
          f"({RESIDENTS} residents, click 实名认证 / answer the name step)")
    print(table(results))
    plain = next((r for r in results if r["name"] == "rs-sqlite-plain"), None)
    if plain and MEMORY_MESSAGES:
        target = next(t for t, _ in started if t["name"] == "rs-sqlite-plain")
        plain["memory"] = memory(wrk_bin, target, 5189, plain["rps"])
    for r in results:
        if "memory" in r:
            m = r["memory"]
            first, second = m["sent"]
            print(f"\nmemory ({r['name']}, {'preloaded' if PRELOAD else 'not preloaded'}), per worker MB:")
            for kind, key in (("RSS", "mb"), ("PSS", "pss_mb")):
                print(f"  {kind}: start {_mb(m['before_' + key])}; after {first} messages "
                      f"{_mb(m['after_first_' + key])}; after {first + second} {_mb(m['after_second_' + key])}")
    print(f"\nmetrics + access line per webhook call: {ops_overhead():.0f} µs (in-process)")
    from bench import outbox
    dbs = [f"sqlite:///{WORK}/outbox.sqlite3"] + ([pg_url] if pg_url else [])
    log(f"outbox: {outbox.MESSAGES} template messages to a local API stand-in")
    sent = outbox.main(dbs)
    print(f"\noutbox, {outbox.MESSAGES} template messages to a local stand-in of the WeChat API")
    print(outbox.table(sent))
    print("\n" + TARGETS_TEXT)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps({"webhook": results, "outbox": sent}, indent=1))
    return 0


def _mb(sizes: list[float]) -> str:
    """Worker sizes as '61.2 / 60.8'."""
    return " / ".join(f"{s:.1f}" for s in sizes)


if __name__ == "__main__":
    sys.exit(main())
