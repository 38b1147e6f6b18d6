"""DBOS Transact peer: a workflow of ``STEPS`` trivial steps on a SQLite system database.

Run by ``benchmarks/_peers.py`` with the peers' own virtual environment's Python, never imported
by writgate. Usage: ``dbos_chain.py STEPS SAMPLES WORKDIR``. Prints one JSON line: the samples,
each the wall time of one workflow divided by its steps, in milliseconds. Every step's outcome is
checkpointed in the system database before the next step starts (DBOS's durability).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dbos import DBOS, DBOSConfig

STEPS, SAMPLES, WORKDIR = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])

config: DBOSConfig = {
    "name": "writgate-bench-chain",
    "system_database_url": f"sqlite:///{WORKDIR / 'dbos.sqlite'}",
    "run_admin_server": False,
    "log_level": "WARNING",
}
DBOS(config=config)


@DBOS.step()
def trivial(index: int) -> int:
    """A step that does nothing: what remains is DBOS's cost."""
    return index


@DBOS.workflow()
def chain(steps: int) -> int:
    """``steps`` steps one after the other, each durable before the next."""
    for index in range(steps):
        trivial(index)
    return steps


DBOS.launch()
try:
    chain(5)  # warm-up, as writgate's figure has
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        chain(STEPS)
        samples.append((time.perf_counter() - start) * 1000 / STEPS)
finally:
    DBOS.destroy()
print(json.dumps(samples))
