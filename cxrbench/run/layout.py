"""The files of a run's output folder, named once (the harness, output, lock, evaluate, the API
and the CLI use them)."""

from __future__ import annotations

RESULTS_FILE = "results.json"
SPLIT_FILE = "split_plan.json"
REPORT_FILE = "report.html"
LOCK_FILE = ".cxrbench.lock"  # held by whoever writes into the folder (a run, an evaluate)
