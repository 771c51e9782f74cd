"""Support's user search from 10,000 to 1,000,000 users (`make bench BENCH_ARGS="--only search"`).

Users are seeded in practices of 10,000 ("Search Practice 001", ...), then support searches
over HTTP for a rare name, a rare email, a practice's name, a term every user matches, and a
term none does. Each search is timed `repeats` times at both sizes (p50/p95) and its SQL
statements are counted; the target is p95 at the large size within 1.5x of the small one, with
the same statement count. PostgreSQL only: the trigram indexes of migration 0015 are the point.
"""

from __future__ import annotations

import sys

import pyotp

from bench import flows, seed
from bench.servers import Server

PRACTICE_SIZE = 10_000
SEARCHES = {
    "a rare name": "Bench User 0004321",
    "a rare email": "user0004321@",
    "a practice's name": "Search Practice 001",
    "a term every user matches": "bench user",
    "no match": "nobody-zz",
}


def _seed_users(app, have: int, want: int) -> int:
    number = have // PRACTICE_SIZE
    while have < want:
        number += 1
        seed.seed_practice(app, users=PRACTICE_SIZE, enrolled="mixed", practice_name=f"Search Practice {number:03d}")
        have += PRACTICE_SIZE
    return have


def _measure(app, url: str, secret: str, browsers: dict, repeats: int) -> dict:
    from bench.run import _count_queries, _log_in_browsers

    result = {"pages": {}}
    with Server("wsgi:app", seed.server_env(url)) as server:
        # Logged in afresh at each size: seeding a million users outlasts support's confirmation
        # (15 minutes), and a search that redirects to Log In must fail the run, never be timed.
        browsers.clear()
        browsers.update(_log_in_browsers(server.base, secret))
        support = browsers["support"]
        for name, term in SEARCHES.items():
            path = "/support/users?q=" + term.replace(" ", "+")
            for _ in range(5):
                assert support.get(server.base + path, allow_redirects=False).status_code == 200
            timings = flows.Timings()
            for _ in range(repeats):
                response = timings.timed(name, lambda path=path: support.get(server.base + path, allow_redirects=False))
                assert response.status_code == 200, (name, response.status_code)
            result["pages"][name] = timings.report()[name]
    support_pages = {f"{name} (support)": "/support/users?q=" + term.replace(" ", "+")
                     for name, term in SEARCHES.items()}
    result["queries"] = {name.removesuffix(" (support)"): count
                         for name, count in _count_queries(app, support_pages, browsers).items()}
    return result


def search_benchmark(results: dict, workdir: str, *, sizes: list[int], repeats: int) -> None:
    url = seed.new_database("postgresql", workdir)
    try:
        seed.migrate(url)
        app = seed.app_for(url)
        secret = pyotp.random_base32()
        have = 0
        browsers: dict = {}
        section = results.setdefault("postgresql", {}).setdefault("search", {})
        for size in sizes:
            print(f"  search: {size:,} users ...", file=sys.stderr)
            if have == 0:
                have = _seed_users(app, 0, size)
                seed.add_account(app, email="admin@scale.bench.test", role="practice_admin", practice_id=1)
                seed.add_account(app, email="support@scale.bench.test", role="support", practice_id=None,
                                 totp_secret=secret)
            else:
                have = _seed_users(app, have, size)
            seed.settle(url)
            section[f"{size}_users"] = _measure(app, url, secret, browsers, repeats)
        small, large = (section[f"{size}_users"] for size in (sizes[0], sizes[-1]))
        section["p95_ratio"] = {name: round(large["pages"][name]["p95_ms"] / small["pages"][name]["p95_ms"], 2)
                                for name in small["pages"]}
        section["same_query_counts"] = small["queries"] == large["queries"]
        section["sizes"] = sizes
    finally:
        seed.drop_database(url)


def verdicts(results: dict, target: float) -> list[dict]:
    section = results.get("postgresql", {}).get("search")
    if not section:
        return []
    rows = [{"target": f"support search '{name}': p95 at {section['sizes'][-1]:,} users within {target}x of "
                       f"{section['sizes'][0]:,}", "figure": ratio, "passed": ratio <= target}
            for name, ratio in section["p95_ratio"].items()]
    rows.append({"target": "support search: same SQL statements at both sizes",
                 "figure": section["same_query_counts"], "passed": section["same_query_counts"]})
    return rows


def markdown(results: dict) -> str:
    section = results.get("postgresql", {}).get("search")
    if not section:
        return ""
    small, large = (section[f"{size}_users"] for size in (section["sizes"][0], section["sizes"][-1]))
    lines = ["", f"Support's user search (PostgreSQL), {section['sizes'][0]:,} → {section['sizes'][-1]:,} users:", "",
             "| search | p50 / p95 small (ms) | p50 / p95 large (ms) | p95 ratio | SQL statements |",
             "|---|---|---|---|---|"]
    for name in small["pages"]:
        lines.append(f"| {name} | {small['pages'][name]['p50_ms']} / {small['pages'][name]['p95_ms']} | "
                     f"{large['pages'][name]['p50_ms']} / {large['pages'][name]['p95_ms']} | "
                     f"{section['p95_ratio'][name]} | {small['queries'][name]} → {large['queries'][name]} |")
    return "\n".join(lines) + "\n"
