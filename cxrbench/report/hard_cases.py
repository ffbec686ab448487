"""Hard cases: test images that every top model gets wrong, shown once with every model's score.

A false positive is hard when each top model calls it pneumonia, a false negative when each
calls it normal, at each model's own validation-chosen threshold. They are ranked by the least
confident of the top models (for a false positive the lowest probability among them, for a
false negative the highest), so the first ones shown are those every top model is surest about.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.report.gallery import ImageStore

HIGH_CONFIDENCE = 0.9  # p >= 0.9 for a false positive, p <= 0.1 for a false negative
PER_KIND = 6


def hard_cases(picks: list[dict[str, Any]], all_picks: list[dict[str, Any]], ids: list[str],
               store: ImageStore, per_kind: int = PER_KIND) -> dict[str, Any] | None:
    """``picks``: the top models' ``{"model", "y", "p", "threshold"}``; ``all_picks``: every
    model's, for the score table. None when fewer than two models have test predictions."""
    if len(picks) < 2:
        return None
    y = picks[0]["y"]
    p = np.vstack([pick["p"] for pick in picks])
    wrong = np.vstack([(pick["p"] >= pick["threshold"]) != y for pick in picks]).all(axis=0)
    items, counts = [], {}
    for kind, label in (("false positive", 0), ("false negative", 1)):
        index = np.flatnonzero(wrong & (y == label))
        # Confidence of the least sure top model in the wrong answer.
        confidence = p[:, index].min(axis=0) if label == 0 else 1 - p[:, index].max(axis=0)
        order = index[np.argsort(-confidence, kind="stable")]
        counts[kind] = {"all": int(len(index)),
                        "confident": int(np.sum(confidence >= HIGH_CONFIDENCE))}
        for i in order[:per_kind]:
            scores = [{"model": a["model"], "p": float(a["p"][i]),
                       "threshold": float(a["threshold"]),
                       "wrong": bool((a["p"][i] >= a["threshold"]) != y[i])} for a in all_picks]
            items.append({"record_id": ids[i], "kind": kind, "src": store.thumbnail(ids[i]),
                          "confidence": float(confidence[np.flatnonzero(index == i)[0]]),
                          "scores": scores})
    return {"models": [pick["model"] for pick in picks], "items": items, "counts": counts,
            "high": HIGH_CONFIDENCE, "note": store.note()}
