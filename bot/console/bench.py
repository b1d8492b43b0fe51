"""Times the scheduler's scans, the dashboard and the assessment over a generated park.

`python -m bot.console.bench [N]` (or `make bench-park`).

Generates N requests (default 1,000,000) and N/2 residents in a fresh database (SQLite file under
instance/, or the URL in REDSTEWARD_BENCH_DATABASE_URL), then renders each page a few times as the
organisation department and prints the timings. Rows are inserted in bulk with core INSERTs;
`--reuse` times the park generated last time again.
"""
from __future__ import annotations

import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, text

from models import Base, Estate, Organisation, Resident, ServiceRequest, reporting, rollup
from models.request import ref_for_id

CHUNK = 50_000
RATINGS = ("satisfied", "satisfied", "satisfied", "basically_satisfied", "unsatisfied", None)
TYPES = ("government", "self_governance", "market_service", "public_welfare")


def _requests(start_id: int, count: int, estates: list, handlers: dict, residents: int, now: datetime):
    """Rows of generated requests: two years of them, most answered, some late, some open."""
    rng = random.Random(start_id)
    rows = []
    for i in range(start_id, start_id + count):
        estate_id, community_id = rng.choice(estates)
        created = now - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        deadline = created + timedelta(days=rng.choice((3, 5, 5, 10)))
        answered = created + timedelta(hours=rng.expovariate(1 / 30)) if rng.random() < 0.9 else None
        resolved = answered + timedelta(hours=rng.randrange(1, 72)) if answered and rng.random() < 0.85 else None
        rating = rng.choice(RATINGS) if resolved else None
        status = ("closed" if rating else "resolved") if resolved else ("answered" if answered else "routed")
        rows.append({
            "id": i, "ref": ref_for_id(i), "kind": "help", "type": rng.choice(TYPES), "category": "物业服务",
            "description": "生成的诉求", "status": status, "channel": "wechat",
            "resident_id": rng.randrange(1, residents + 1), "estate_id": estate_id, "community_id": community_id,
            "created_at": created, "handler_id": rng.choice(handlers[estate_id]), "level": "community",
            "deadline_days": 5, "deadline_at": deadline, "answered_at": answered, "resolved_at": resolved,
            "rating": rating, "rated_at": resolved and rating and resolved + timedelta(days=1),
            "closed_at": resolved and rating and resolved + timedelta(days=1),
            "reopen_count": 1 if rating == "unsatisfied" else 0, "unsatisfied_count": 0})
    return rows


def generate(app, n: int, progress=None) -> None:
    """Fills the app's database with the demo park, n requests and n/2 residents.

    `progress(rows)` is called after each bulk insert with the rows just written.
    """
    progress = progress or (lambda rows: None)
    from bot import demo
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s:
        demo.load(s)
        estates = [(e.id, e.community_id) for e in s.scalars(select(Estate))]
        handler_ids = [o.id for o in s.scalars(select(Organisation).where(
            Organisation.kind.in_(("property_company", "owners_committee", "party_organisation"))))]
        handlers = {}
        for e in s.scalars(select(Estate)):
            own = [x for x in (e.property_company_id, e.owners_committee_id, e.party_organisation_id) if x]
            handlers[e.id] = own or handler_ids
    now = datetime.now(timezone.utc)
    engine = app.extensions["redsteward.engine"]
    residents = max(1, n // 2)
    with engine.begin() as conn:
        for start in range(1, residents + 1, CHUNK):
            rng = random.Random(start)
            conn.execute(insert(Resident), [
                {"openid": f"bench{i}", "subscribed": True, "estate_id": rng.choice(estates)[0],
                 "party_member": "confirmed" if rng.random() < 0.2 else "none",
                 "verified_at": now if rng.random() < 0.6 else None, "created_at": now}
                for i in range(start, min(start + CHUNK, residents + 1))])
            progress(min(CHUNK, residents + 1 - start))
    with engine.begin() as conn:
        for start in range(1, n + 1, CHUNK):
            conn.execute(insert(ServiceRequest), _requests(start, min(CHUNK, n + 1 - start), estates,
                                                           handlers, residents, now))
            progress(min(CHUNK, n + 1 - start))
    with sessions() as s, s.begin():
        rollup.rebuild(s)  # the bulk INSERTs went past the ORM, which keeps the rollups
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
        else:
            # The rows came with their ids: requests filed later must start after them.
            conn.execute(text("SELECT setval(pg_get_serial_sequence('service_requests', 'id'), "
                              "(SELECT max(id) FROM service_requests))"))
            # As autovacuum would in time: statistics, and the visibility map for index-only counts.
            for table in ("service_requests", "residents", "request_rollups"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))


def timed(client, url: str, rounds: int = 3) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each of `rounds` GETs of url (the response must be 200).

    CPU time is this process's, SQLite's work included: what the page costs on an idle core,
    whatever else the machine is doing.
    """
    out = []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        resp = client.get(url)
        out.append((time.perf_counter() - t0, time.process_time() - c0))
        assert resp.status_code == 200, (url, resp.status_code)
    return out


def _signed_in(app, username: str):
    """A test client signed in as a sandbox account."""
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/console/login", data={"username": username, "password": "hongguan-demo", "csrf_token": token})
    return client


def time_scans(app, rounds: int = 3) -> None:
    """Times the scheduler's scans and the Friday digest over the generated park (wall clock)."""
    from handlers.jobs import deadlines, digest, summary
    sessions = app.extensions["redsteward.sessions"]
    settings = app.config["REDSTEWARD"]
    now = datetime.now(timezone.utc)
    scans = {
        "reminder scan (24 h before)": lambda s: deadlines.reminder_candidates(s, 24, now),
        "overdue / escalation scan": lambda s: deadlines.overdue_candidates(s, 24, now),
        "daily summary counts": lambda s: summary.community_counts(s, now),
        "satisfaction follow-up scan": lambda s: summary.follow_up_candidates(s, 1, now - timedelta(days=3)),
        "Friday digest (HTML + Excel)": lambda s: digest.compile_form(s, settings, now - timedelta(days=7), now),
        "dashboard headline figures": lambda s: reporting.headline(s, now),
        "rollup rebuild (all requests)": lambda s: rollup.rebuild(s),
    }
    for name, scan in scans.items():
        times = []
        for _ in range(rounds):
            with sessions() as s:
                t0 = time.perf_counter()
                scan(s)
                times.append(time.perf_counter() - t0)
        print(f"{name:30s} " + "  ".join(f"{t:.2f} s" for t in times) + f"   median {sorted(times)[len(times) // 2]:.2f} s")


def main(n: int, reuse: bool = False) -> None:
    """Generates the park (unless reusing the last one) and prints the timings."""
    from bot import create_app
    url = os.environ.get("REDSTEWARD_BENCH_DATABASE_URL", "sqlite:///instance/console-bench.sqlite3")
    if not reuse and url.startswith("sqlite:///") and os.path.exists(url[len("sqlite:///"):]):
        os.remove(url[len("sqlite:///"):])
    app = create_app({"database": {"url": url}})
    engine = app.extensions["redsteward.engine"]
    if not reuse:
        if engine.dialect.name != "sqlite":
            Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        t0 = time.perf_counter()
        generate(app, n)
        print(f"generated {n:,} requests and {n // 2:,} residents in {time.perf_counter() - t0:.0f} s "
              f"({engine.dialect.name})")
    time_scans(app)
    steward = _signed_in(app, "xinghu")
    for name, path in (("inbox, steward", "/console/requests"),
                       ("inbox, steward, overdue page 3", "/console/requests?overdue=1&page=3")):
        _print_page(name, timed(steward, path))
    client = _signed_in(app, "orgdept")
    year = datetime.now().year - 1
    for name, path in (("inbox, whole park", "/console/requests"),
                       ("dashboard (last 12 months)", "/console/dashboard"),
                       (f"assessment ({year})", f"/console/assessment?from={year}-01-01&to={year}-12-31"),
                       (f"assessment export ({year})", f"/console/assessment.xlsx?from={year}-01-01&to={year}-12-31")):
        _print_page(name, timed(client, path))


def _print_page(name: str, times: list[tuple[float, float]]) -> None:
    """One line per page: each round's wall clock (and CPU), then the medians."""
    wall, cpu = (sorted(x)[len(x) // 2] for x in zip(*times))
    print(f"{name:30s} " + "  ".join(f"{w:.2f} s ({c:.2f} s CPU)" for w, c in times)
          + f"   median {wall:.2f} s ({cpu:.2f} s CPU)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--reuse"]
    main(int(args[0]) if args else 1_000_000, reuse="--reuse" in sys.argv)
