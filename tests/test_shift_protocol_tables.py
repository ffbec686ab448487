"""The development protocol's Markdown tables (benchmarks/shift_protocol.py --summary [--rules])
read the JSON lines it writes: error lines are skipped, the last line per model wins, and the
rules table reads each rule's held-out-series and external sensitivity / specificity."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "shift_protocol.py"


def load_script():
    spec = importlib.util.spec_from_file_location("shift_protocol", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def line(model, shift_sens, params=None, protocol="series"):
    rules = {rule: {"threshold": 0.5,
                    "val_in": {"sens": 0.97, "spec": 0.99},
                    "val_shift": {"sens": shift_sens, "spec": 0.9},
                    "external": {"sens": 0.8, "spec": 0.6}}
             for rule in ("youden", "fixed:0.5", "sensitivity:0.95", "sensitivity:0.97",
                          "sensitivity:0.98")}
    return {"model": model, "params": params or {}, "protocol": protocol,
            "holdout": "NORMAL2", "auc_val_in": 0.998, "auc_val_shift": 0.99,
            "auc_external": 0.84, "auc_external_ci": [0.79, 0.89], "rules": rules,
            "fit_s": 12.3, "load": [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]], "tag": "t"}


def test_tables_skip_errors_and_keep_the_last_line(tmp_path):
    module = load_script()
    path = tmp_path / "dev.jsonl"
    rows = [line("probe", 0.91), {"model": "broken", "params": {}, "protocol": "series",
                                   "error": "TypeError: x"},
            line("probe", 0.96), line("ensemble", 0.95, {"members": ["probe", "hog_svm"]})]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    summary = module.summary_table(path)
    assert "broken" not in summary
    assert summary.count("| probe |") == 1
    assert "0.960 / 0.900" in summary  # the later probe line, at sensitivity:0.95

    rules = module.rules_table(path)
    probe_rows = [r for r in rules.splitlines() if r.startswith("| probe |")]
    assert len(probe_rows) == 2  # held-out series and external
    assert "| held-out series (NORMAL2) | 0.960 / 0.900" in probe_rows[0]
    assert "| external | 0.800 / 0.600" in probe_rows[1]
    assert '{"members": ["probe", "hog_svm"]}' in rules
