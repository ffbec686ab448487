"""Where a run's time goes: the plugins' own work against everything the harness does.

``RunClock`` times the parts of one ``cxrbench run`` invocation (loading and planning, the
jobs, results writes, statistics, external sets, the report); :meth:`RunClock.summary` sets
them against the plugins' fit and predict seconds reported in the records this invocation
produced, and their predictions on the external sets it scored (``--external``). The
difference, ``harness_s``, is the harness's overhead: data loading and image caching, starting
each job's process and loading its data, scoring, saving and reloading models, writing
results, statistics and the report.
It is stored as ``run.timing`` in the results (for a resumed run: this invocation's share).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

PLUGIN_TIMINGS = ("fit_s", "predict_val_s", "predict_s")


def plugin_seconds(record: dict[str, Any]) -> float:
    """Seconds the plugin itself worked in a job: fit, predict on val, predict on test."""
    timing = record.get("timing") or {}
    return float(sum(timing.get(name) or 0.0 for name in PLUGIN_TIMINGS))


def external_predict_seconds(results: dict[str, Any], names: Iterable[str]) -> float:
    """Seconds the saved models spent predicting on the external sets ``names``."""
    seconds = 0.0
    for name in names:
        entry = (results.get("external") or {}).get(name) or {}
        for scored in (entry.get("records") or {}).values():
            if scored.get("status") == "ok":
                seconds += float((scored.get("timing") or {}).get("predict_s") or 0.0)
    return seconds


@dataclass
class RunClock:
    start: float = field(default_factory=time.perf_counter)
    parts: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t0

    def summary(self, records: Iterable[dict[str, Any]],
                external_predict_s: float = 0.0) -> dict[str, Any]:
        """``run.timing``: wall, plugin and harness seconds, the harness's share, the parts.

        ``records`` are those this invocation ran (not those a resumed run kept);
        ``external_predict_s`` the plugins' predictions on the external sets it scored.
        """
        records = list(records)
        wall = time.perf_counter() - self.start
        in_jobs = sum(plugin_seconds(r) for r in records if r.get("status") == "ok")
        plugin = in_jobs + external_predict_s
        parts = {name: round(seconds, 3) for name, seconds in self.parts.items()}
        if "jobs" in self.parts:
            parts["jobs_outside_plugins"] = round(max(0.0, self.parts["jobs"] - in_jobs), 3)
        if "external" in self.parts:
            parts["external_outside_plugins"] = round(
                max(0.0, self.parts["external"] - external_predict_s), 3)
        return {
            "wall_s": round(wall, 3),
            "plugin_s": round(plugin, 3),
            "harness_s": round(max(0.0, wall - plugin), 3),
            "harness_fraction": round(max(0.0, wall - plugin) / wall, 5) if wall > 0 else None,
            "jobs": len(records),
            "parts_s": parts,
        }
