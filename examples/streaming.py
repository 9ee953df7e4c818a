"""Streaming: records flow through a graph while they arrive.

Run it with ``python examples/streaming.py``. The example starts a small HTTP server
on 127.0.0.1 that sends 40 sensor readings, one every 25 ms, as one chunked response
(as a log tail, a message queue or a socket feed would). In the graph:

- ``readings`` is a generator task: it yields each line the moment it arrives;
- ``parse`` is a stage: it reads ``readings`` item by item and yields records;
- ``score.map(records)`` runs one trial per record as records arrive, on threads:
  a slow call (50 ms, a model or a web service) per record;
- ``running_mean`` is a second stage over the same records: a running aggregate.

Each score is printed as its trial ends, with the latency from its record's arrival:
about the 50 ms of the call, not the second the whole stream takes.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagexec as dx
from dagexec.executors import ThreadExecutor

N_READINGS = 40
EVERY_S = 0.025
ARRIVED: dict[int, float] = {}  # reading number -> when its line arrived


class Feed(BaseHTTPRequestHandler):
    """Sends the readings as one chunked response, one line every 25 ms."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for n in range(N_READINGS):
            line = json.dumps({"n": n, "celsius": 18 + n % 4}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(EVERY_S)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


@dx.task
def readings(url: str) -> Iterator[bytes]:
    """Each line of the feed, as soon as it arrives."""
    with urllib.request.urlopen(url) as response:
        for line in response:
            ARRIVED[json.loads(line)["n"]] = time.time()
            yield line


@dx.task
def parse(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        yield json.loads(line)


@dx.task
def score(record: dict[str, Any]) -> float:
    time.sleep(0.05)  # a slow call per record
    return float(record["celsius"]) * 1.8 + 32


@dx.task
def running_mean(records: Iterator[dict[str, Any]]) -> Iterator[float]:
    total = 0.0
    for k, record in enumerate(records, 1):
        total += record["celsius"]
        yield total / k


class Latency:
    """A run callback: when a score's trial ends, its latency from the record's arrival."""

    def __init__(self) -> None:
        self.ms: dict[int, float] = {}
        self.last_arrival_when_first_scored = 0.0

    def on_trial_end(self, trial: dx.Trial) -> None:
        if trial.key.startswith("score["):
            n = int(trial.key[len("score[") : -1])
            self.ms[n] = (trial.end - ARRIVED[n]) * 1000
            if len(self.ms) == 1:
                self.last_arrival_when_first_scored = max(ARRIVED.values())
            if n % 10 == 0:
                print(f"reading {n:2}: scored {self.ms[n]:.0f} ms after it arrived")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/readings"

    with dx.Graph("sensor-feed") as g:
        records = parse(readings(g.input("url", str)))
        g.output(score.map(records), name="fahrenheit")
        g.output(running_mean(records), name="means")
    plan = g.compile()

    latency = Latency()
    start = time.time()
    result = plan.run(url=url, executor=ThreadExecutor(max_workers=5), callbacks=[latency])
    took = time.time() - start
    server.shutdown()

    out = result.outputs
    print(f"scored {len(out['fahrenheit'])} readings; running mean at the end: {out['means'][-1]:.2f}")
    before = latency.last_arrival_when_first_scored < max(ARRIVED.values())
    print(f"the first score came before the last reading arrived: {before}")
    ms = sorted(latency.ms.values())
    median, most = statistics.median(ms), ms[-1]
    print(f"latency from arrival to score: median {median:.0f} ms, max {most:.0f} ms; the run took {took:.1f} s")
    items = {key: [t.items for t in result.trials[key]] for key in ("readings", "parse", "running_mean")}
    print(f"items: {items}")


if __name__ == "__main__":
    main()
