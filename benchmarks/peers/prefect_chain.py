"""Prefect peer: a flow of ``STEPS`` trivial tasks against Prefect's ephemeral SQLite server.

Run by ``benchmarks/_peers.py`` with the peers' own virtual environment's Python, never imported
by writgate. Usage: ``prefect_chain.py STEPS SAMPLES`` (``PREFECT_HOME`` points at a fresh
directory, so the server's SQLite database is new). Prints one JSON line: the samples, each the
wall time of one flow divided by its tasks, in milliseconds. Flow and task results are persisted
(``persist_result=True``); Prefect records task-run states through its event pipeline, which the
flow does not wait for.
"""

from __future__ import annotations

import json
import sys
import time

from prefect import flow, task

STEPS, SAMPLES = int(sys.argv[1]), int(sys.argv[2])


@task(persist_result=True)
def trivial(index: int) -> int:
    """A task that does nothing: what remains is Prefect's cost."""
    return index


@flow(persist_result=True)
def chain(steps: int) -> int:
    """``steps`` tasks one after the other."""
    for index in range(steps):
        trivial(index)
    return steps


chain(5)  # warm-up (also starts the ephemeral server), as writgate's figure has a warm-up
samples = []
for _ in range(SAMPLES):
    start = time.perf_counter()
    chain(STEPS)
    samples.append((time.perf_counter() - start) * 1000 / STEPS)
print(json.dumps(samples))
