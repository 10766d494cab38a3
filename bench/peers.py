"""lmsweb's Users list against the admin screens a Python shop would pick instead, on the
same database (bench/users_list.py's 100,000 users): a Django admin changelist
(bench/peers_django/) and a Flask-Admin ModelView (bench/peers_flaskadmin.py), each as it
ships and with its documented way to skip the exact count (Django
`show_full_result_count = False`, Flask-Admin `simple_list_pager = True`).

Every app runs under gunicorn with 2 sync workers at the same time. For each request kind
(page 1, a status filter, a search, a group, a combined filter, a deep page), requests to
every screen are interleaved round by round (the screens in a new random order each round),
sequentially, one connection each: p50/p95. Then 8 concurrent clients per screen and
request, each sending a fixed number of requests: req/s. lmsweb counts twice, as the full page
and as the partial htmx asks for. Ratios are the best peer's figure against lmsweb's
(above 1: lmsweb ahead). SQLite, and PostgreSQL when TEST_DATABASE_URL names it.

Needs the bench extra: `pip install -e '.[bench]'`. Sizes: PEERS_RUNS (sequential rounds,
default 30) and PEERS_LOAD_REQUESTS (requests per client in the load phase, default 6);
PEERS_ENGINE=sqlite or postgresql measures that one only.

    .venv/bin/python -m bench peers
"""

from __future__ import annotations

import http.client
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from bench import users_list

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
RUNS = int(os.environ.get("PEERS_RUNS", "30"))
LOAD_REQUESTS = int(os.environ.get("PEERS_LOAD_REQUESTS", "6"))
CLIENTS = 8
SEARCH = "mar"
DEEP_PAGE = 1000
DJANGO_USER, DJANGO_PASSWORD = "bench", "bench-django-password"
REQUESTS = ("page 1", "status", f"search '{SEARCH}'", "group", "combined", "deep page")


def _request(
    port: int, path: str, headers: dict | None = None, method="GET", body=None, timeout=120
):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


class Server:
    """One app under gunicorn, 2 sync workers, on a free loopback port."""

    def __init__(self, name: str, target: str, env: dict):
        self.name = name
        self.port = users_list.free_port()
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                target,
            ],
            cwd=ROOT.parent,
            env={**os.environ, **env},
        )

    def wait(self) -> None:
        import socket

        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.name} did not start")
        # The port opens before the workers have imported the app: wait for an answer.
        _request(self.port, "/", timeout=300)

    def cpu_seconds(self) -> float:
        """User + system CPU its workers (the master's children) have used so far: on
        SQLite the database's work too (in process); on PostgreSQL not the server's."""
        ticks = os.sysconf("SC_CLK_TCK")
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for child in children:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def django_env(url: str) -> dict:
    return {"DJANGO_SETTINGS_MODULE": "bench.peers_django.settings", "PEERS_DATABASE_URL": url}


def prepare_django(url: str) -> None:
    """Django's own tables (in their own SQLite file) and a superuser to sign in as."""
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from django.contrib.auth.models import User\n"
        f"if not User.objects.filter(username={DJANGO_USER!r}).exists():\n"
        f"    User.objects.create_superuser({DJANGO_USER!r}, 'bench@bench.example', "
        f"{DJANGO_PASSWORD!r})\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT.parent,
        env={**os.environ, **django_env(url)},
        check=True,
    )


def django_sign_in(port: int) -> str:
    response, html = _request(port, "/admin/login/")
    csrf_cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie")).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1).decode()
    body = urlencode(
        {"username": DJANGO_USER, "password": DJANGO_PASSWORD, "csrfmiddlewaretoken": token}
    )
    response, _ = _request(
        port,
        "/admin/login/?next=/admin/",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
        },
        "POST",
        body,
    )
    assert response.status == 302, response.status
    cookies = [c.split(";")[0] for c in response.headers.get_all("Set-Cookie")]
    return "; ".join(c for c in cookies if c.startswith("sessionid="))


def flask_admin_filter_args(port: int) -> dict[str, str]:
    """Flask-Admin's filter parameter names (flt<n>_<filter>), read from its own page."""
    _, html = _request(port, "/admin/users/")
    names = dict.fromkeys(re.findall(rb'"(\w+_equals)"', html))
    found = {}
    for name in (n.decode() for n in names):
        for key in ("status", "role", "location", "groups"):
            if name.startswith(f"{key}_") and key not in found:
                found[key] = name
    assert len(found) == 4, found
    return found


def ids_and_names(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        location = conn.scalar(sa.text("SELECT id FROM locations WHERE name = 'Berlin'"))
        group = conn.scalar(sa.text("SELECT id FROM groups WHERE name = 'Sales'"))
    engine.dispose()
    return location, group


def screens(url: str, lms: Server, django: Server, flask_admin: Server) -> list[dict]:
    """Per screen: its port, headers and the path of each request kind."""
    location, group = ids_and_names(url)
    lms_cookie = users_list.sign_in(lms.port)
    lms_paths = {
        "page 1": "/admin/users",
        "status": "/admin/users?status=active",
        f"search '{SEARCH}'": f"/admin/users?q={SEARCH}",
        "group": f"/admin/users?group={group}",
        "combined": f"/admin/users?q={SEARCH}&location={location}&group={group}"
        "&status=active&role=learner",
        "deep page": f"/admin/users?page={DEEP_PAGE}",
    }
    django_cookie = django_sign_in(django.port)

    def django_paths(site: str) -> dict[str, str]:
        base = f"/{site}/peers_django/user/"
        return {
            "page 1": base,
            "status": f"{base}?status__exact=active",
            f"search '{SEARCH}'": f"{base}?q={SEARCH}",
            "group": f"{base}?groups__id__exact={group}",
            "combined": f"{base}?q={SEARCH}&location__id__exact={location}"
            f"&groups__id__exact={group}&status__exact=active&role__exact=learner",
            "deep page": f"{base}?p={DEEP_PAGE}",
        }

    flt = flask_admin_filter_args(flask_admin.port)

    def flask_admin_paths(endpoint: str) -> dict[str, str]:
        base = f"/admin/{endpoint}/"
        return {
            "page 1": base,
            "status": f"{base}?flt0_{flt['status']}=active",
            f"search '{SEARCH}'": f"{base}?search={SEARCH}",
            "group": f"{base}?flt0_{flt['groups']}=Sales",
            "combined": f"{base}?search={SEARCH}&flt0_{flt['location']}=Berlin"
            f"&flt1_{flt['groups']}=Sales&flt2_{flt['status']}=active"
            f"&flt3_{flt['role']}=learner",
            # Flask-Admin counts pages from 0.
            "deep page": f"{base}?page={DEEP_PAGE - 1}",
        }

    return [
        {
            "name": "lmsweb page",
            "server": lms,
            "port": lms.port,
            "headers": {"Cookie": lms_cookie},
            "paths": lms_paths,
        },
        {
            "name": "lmsweb partial",
            "server": lms,
            "port": lms.port,
            "headers": {"Cookie": lms_cookie, **users_list.HX},
            "paths": lms_paths,
        },
        {
            "name": "Django admin",
            "server": django,
            "port": django.port,
            "headers": {"Cookie": django_cookie},
            "paths": django_paths("admin"),
        },
        {
            "name": "Django, no full count",
            "server": django,
            "port": django.port,
            "headers": {"Cookie": django_cookie},
            "paths": django_paths("fastadmin"),
        },
        {
            "name": "Flask-Admin",
            "server": flask_admin,
            "port": flask_admin.port,
            "headers": {},
            "paths": flask_admin_paths("users"),
        },
        {
            "name": "Flask-Admin, simple pager",
            "server": flask_admin,
            "port": flask_admin.port,
            "headers": {},
            "paths": flask_admin_paths("fast"),
        },
    ]


def rows_shown(name: str, body: bytes) -> int:
    """Rows of users on the page, to check every screen answers the same request."""
    if name.startswith("lmsweb"):
        return len(re.findall(rb'<tr id="user-\d+"', body))
    if name.startswith("Django"):
        return len(re.findall(rb'<td class="field-email"', body))
    return len(re.findall(rb'<td class="col-email"', body))


def load(port: int, path: str, headers: dict) -> float:
    """Requests/second with CLIENTS concurrent clients, each sending LOAD_REQUESTS requests
    one after another: a bounded count, so the figure stays meaningful however slow the
    answers are on a loaded machine. Every answer must be a 200."""
    errors = []
    barrier = threading.Barrier(CLIENTS + 1)

    def client():
        barrier.wait()
        for _ in range(LOAD_REQUESTS):
            response, _ = _request(port, path, headers)
            if response.status != 200:
                errors.append(response.status)

    pool = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, f"non-200 answers from {path}: {errors[:5]}"
    return CLIENTS * LOAD_REQUESTS / elapsed


def measure(url: str, all_screens: list[dict]) -> dict:
    results: dict = {}
    print(f"  {'request':<14} {'screen':<26} {'rows':>4} {'KB':>6}")
    for request in REQUESTS:
        for screen in all_screens:
            response, body = _request(screen["port"], screen["paths"][request], screen["headers"])
            assert response.status == 200, (screen["name"], request, response.status)
            results[request, screen["name"]] = {"times": [], "kb": len(body) / 1024}
            shown = rows_shown(screen["name"], body)
            print(f"  {request:<14} {screen['name']:<26} {shown:>4} {len(body) / 1024:6.0f}")
    rng = random.Random(19)
    for _ in range(RUNS):
        for request in REQUESTS:
            order = list(all_screens)
            rng.shuffle(order)
            for screen in order:
                started = time.perf_counter()
                response, _ = _request(screen["port"], screen["paths"][request], screen["headers"])
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status == 200, (screen["name"], request, response.status)
                results[request, screen["name"]]["times"].append(elapsed)
    print("\n  Sequential, before the load phase:")
    print(f"  {'request':<14} {'screen':<26} {'p50 ms':>7} {'p95 ms':>7}")
    for request in REQUESTS:
        for screen in all_screens:
            times = results[request, screen["name"]]["times"]
            p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
            print(f"  {request:<14} {screen['name']:<26} {p50:7.1f} {p95:7.1f}", flush=True)
    for request in REQUESTS:
        for screen in all_screens:
            before = screen["server"].cpu_seconds()
            results[request, screen["name"]]["rps"] = load(
                screen["port"], screen["paths"][request], screen["headers"]
            )
            used = screen["server"].cpu_seconds() - before
            results[request, screen["name"]]["cpu"] = used * 1000 / (CLIENTS * LOAD_REQUESTS)
    return results


def report(results: dict, all_screens: list[dict]) -> None:
    names = [s["name"] for s in all_screens]
    print(
        f"\n  {'request':<14} {'screen':<26} {'p50 ms':>7} {'p95 ms':>7} {'req/s':>7} "
        f"{'CPU ms':>7} {'KB':>5}"
    )
    for request in REQUESTS:
        for name in names:
            row = results[request, name]
            times = row["times"]
            row["p50"] = statistics.median(times)
            row["p95"] = statistics.quantiles(times, n=20)[-1]
            print(
                f"  {request:<14} {name:<26} {row['p50']:7.1f} {row['p95']:7.1f} "
                f"{row['rps']:7.1f} {row['cpu']:7.1f} {row['kb']:5.0f}"
            )
    peers = [n for n in names if not n.startswith("lmsweb")]
    print("\n  Ratios, best peer against lmsweb (above 1: lmsweb ahead):")
    print(f"  {'request':<14} {'lmsweb as':<9} {'p50':>6} {'p95':>6} {'req/s':>6} {'CPU':>6}")
    for request in REQUESTS:
        best_p50 = min(results[request, p]["p50"] for p in peers)
        best_p95 = min(results[request, p]["p95"] for p in peers)
        best_rps = max(results[request, p]["rps"] for p in peers)
        best_cpu = min(results[request, p]["cpu"] for p in peers)
        for name, label in (("lmsweb page", "page"), ("lmsweb partial", "partial")):
            row = results[request, name]
            rps = f"{row['rps'] / best_rps:6.2f}" if best_rps else "     -"
            cpu = f"{best_cpu / row['cpu']:6.2f}" if row["cpu"] else "     -"
            print(
                f"  {request:<14} {label:<9} {best_p50 / row['p50']:6.2f} "
                f"{best_p95 / row['p95']:6.2f} {rps} {cpu}"
            )


def run(engine: str, url: str) -> None:
    users_list.prepare(url)
    prepare_django(url)
    servers = [
        Server(
            "lmsweb",
            "app:app",
            {"DATABASE_URL": url, "SECRET_KEY": users_list.SECRET},
        ),
        Server("Django admin", "bench.peers_django.wsgi:application", django_env(url)),
        Server("Flask-Admin", "bench.peers_flaskadmin:app", {"PEERS_DATABASE_URL": url}),
    ]
    try:
        for server in servers:
            server.wait()
        all_screens = screens(url, *servers)
        print(
            f"  {RUNS} interleaved sequential rounds; {CLIENTS} concurrent clients x "
            f"{LOAD_REQUESTS} requests per screen and request; gunicorn, 2 sync workers each"
        )
        report(measure(url, all_screens), all_screens)
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    only = os.environ.get("PEERS_ENGINE", "")
    for engine, url in users_list.databases():
        if only and engine != only:
            continue
        print(f"\n[{engine}] {users_list.USERS:,} users")
        run(engine, url)


if __name__ == "__main__":
    main()
