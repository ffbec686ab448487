"""Small-data honesty: whether a run's splits are too small for its numbers to mean much.

A 3-images-per-class test split scores "accuracy 1.000 [1.000, 1.000]": exact-looking numbers
with an interval that hides how few images stand behind them. ``small_data(results,
statistics)`` flags a run when the validation or test split holds fewer than
``MIN_IMAGES_PER_CLASS`` images of a class (validation chooses every threshold), or when most
bootstrap resamples of the test set leave a metric undefined (a resample without one of the
classes). The flag is derived from the records, like ``summary`` and ``statistics``; the run
warns with its reasons and the report shows them next to the numbers.
"""

from __future__ import annotations

from typing import Any

MIN_IMAGES_PER_CLASS = 20
MOST = 0.5  # "most resamples undefined": more than this share of them
CLASS_NAMES = ("NORMAL", "PNEUMONIA")


def _class_counts(results: dict[str, Any], split: str) -> tuple[int, int] | None:
    """(normal, pneumonia) images the records were scored on (else the planned counts)."""
    labels = ((results.get("evaluation") or {}).get(split) or {}).get("labels")
    if labels:
        return labels.count(0), labels.count(1)
    counts = ((results.get("split") or {}).get("counts") or {}).get(split)
    if isinstance(counts, dict) and "normal" in counts and "pneumonia" in counts:
        return int(counts["normal"]), int(counts["pneumonia"])
    return None


def split_size_reasons(results: dict[str, Any]) -> list[str]:
    """A reason for each of val and test with fewer than MIN_IMAGES_PER_CLASS of a class."""
    reasons = []
    for split, role in (("val", "every threshold is chosen on it"),
                        ("test", "every reported number comes from it")):
        counts = _class_counts(results, split)
        if counts is None or min(counts) >= MIN_IMAGES_PER_CLASS:
            continue
        reasons.append(f"the {split} split has {counts[0]} {CLASS_NAMES[0]} and {counts[1]} "
                       f"{CLASS_NAMES[1]} images, fewer than {MIN_IMAGES_PER_CLASS} of a class "
                       f"({role}): its numbers are too uncertain to rank models by")
    return reasons


def undefined_resample_reasons(statistics: dict[str, Any]) -> list[str]:
    """The worst metric per model when most test resamples left it undefined."""
    n = ((statistics.get("method") or {}).get("bootstrap") or {}).get("n_resamples")
    if not n:
        return []
    reasons = []
    for model, entry in (statistics.get("models") or {}).items():
        undefined = {metric: interval.get("undefined_resamples") or 0
                     for metric, interval in (entry.get("test") or {}).items()}
        if not undefined:
            continue
        metric = max(undefined, key=lambda name: undefined[name])
        if undefined[metric] > MOST * n:
            reasons.append(f"{model}: {undefined[metric]} of {n} bootstrap resamples of the "
                           f"test set left {metric} undefined (a class missing): its interval "
                           "means nothing")
    return reasons


def small_data(results: dict[str, Any], statistics: dict[str, Any]) -> dict[str, Any]:
    """``{"flagged", "min_images_per_class", "reasons"}`` for a results file (see module)."""
    reasons = split_size_reasons(results) + undefined_resample_reasons(statistics)
    return {"flagged": bool(reasons), "min_images_per_class": MIN_IMAGES_PER_CLASS,
            "reasons": reasons}
