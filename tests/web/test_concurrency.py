"""Tracking under concurrent load on the real server: nothing is lost."""
from __future__ import annotations

import json
import re
import threading
import urllib.request

THREADS, EVENTS = 20, 1000


def _open_visit(base: str, token: str) -> str:
    html = urllib.request.urlopen(f"{base}/s/{token}", timeout=10).read()
    return re.search(rb'data-visit="([^"]+)"', html).group(1).decode()


def test_20_threads_posting_1000_events_lose_none(live_deck):
    visits = [_open_visit(live_deck.url, live_deck.token) for _ in range(THREADS)]
    failures: list[str] = []

    def worker(t: int) -> None:
        for i in range(EVENTS // THREADS):
            # Each thread is one visitor; every 5th report repeats a stay with a larger total (a heartbeat).
            stay = f"t{t:02d}stay{i // 5:03d}"
            body = {"visit": visits[t], "view": stay, "slide": 1 + (i // 5) % 5, "visible_ms": 100 * (i % 5 + 1)}
            req = urllib.request.Request(f"{live_deck.url}/api/track", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "text/plain"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    if resp.status != 200:
                        failures.append(str(resp.status))
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []

    [(received, stays, total_ms)] = live_deck.query(
        "SELECT SUM(events), COUNT(*), SUM(visible_ms) FROM slide_views")
    assert received == EVENTS
    assert stays == EVENTS // 5
    # Each stay's largest report is 500 ms (the fifth, i % 5 == 4) — kept, never summed twice.
    assert total_ms == stays * 500
