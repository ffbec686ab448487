"""``cxrbench predict``: a saved model's probability of pneumonia for new image files.

Files are decoded exactly as the model's training images were: the same decoder (its version
is checked against the model's), at the model's size and channels. Each file's sha256 keys the
feature cache, as in a run. Files that cannot be decoded are listed and skipped. Work goes in
batches (bounded memory), decoded in a process pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.cores import usable_cores
from cxrbench.data.cache import run_chunks, split_chunks
from cxrbench.data.decode import ImageDecodeError, decode_image
from cxrbench.data.formats import is_image_file
from cxrbench.plugins.artifacts import SavedModel, load_model
from cxrbench.plugins.contract import ImageSet
from cxrbench.run.jobs import validate_probabilities

BATCH = 512  # images decoded and scored at a time
LABELS = ("NORMAL", "PNEUMONIA")


class PredictError(ValueError):
    """Nothing to predict: a path that does not exist, or no image file under the paths."""


@dataclass(frozen=True)
class Prediction:
    path: str
    probability: float
    label: str  # at the model's saved threshold


@dataclass
class PredictOutcome:
    model: SavedModel
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        info = self.model.info
        return {
            "model": {"name": info["model"], "job_id": info.get("job_id"),
                      "folder": str(self.model.directory), "threshold": self.model.threshold,
                      "threshold_rule": info.get("threshold_rule"),
                      "input_size": info["input_size"], "channels": info["channels"],
                      "decoder_version": info["decoder_version"]},
            "predictions": [{"path": p.path, "probability": p.probability, "label": p.label}
                            for p in self.predictions],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
            "seconds": round(self.seconds, 3),
        }


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the image files under folders (recursive, sorted; hidden skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and is_image_file(p)  # DICOM without an extension too
                            and not any(part.startswith(".") for part in
                                        p.relative_to(path).parts))
        elif path.exists():
            found.append(path)  # named explicitly: tried even with an unusual extension
        else:
            raise PredictError(f"{path} does not exist; give image files or folders of them")
    if not found:
        raise PredictError(f"no image files (.jpeg, .jpg, .png) under {', '.join(map(str, paths))}")
    return found


def _decode_chunk(items: list[tuple[int, str]], size: int, channels: int
                  ) -> list[tuple[int, np.ndarray | None, str]]:
    """Worker: ``(index, pixels or None, sha256 or the reason it failed)`` per file."""
    out = []
    for index, path in items:
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            out.append((index, decode_image(path, size, channels), digest))
        except ImageDecodeError as err:
            out.append((index, None, err.reason))
        except OSError as err:
            out.append((index, None, f"{type(err).__name__}: {err}"))
    return out


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("predicting", total=total)
        yield lambda n: bar.advance(task, n)


def predict_files(model_dir: str | Path, paths: Sequence[str | Path], *, progress: bool = False,
                  expected_sha256: str | None = None, workers: int | None = None
                  ) -> PredictOutcome:
    """Load (and verify) the model in ``model_dir`` and score every image under ``paths``."""
    start = time.perf_counter()
    files = collect_images(paths)
    saved = load_model(model_dir, expected_sha256=expected_sha256)
    outcome = PredictOutcome(model=saved)
    workers = max(1, workers or usable_cores())
    with _progress(progress, len(files)) as advance:
        for first in range(0, len(files), BATCH):
            batch = [str(p) for p in files[first:first + BATCH]]
            decoded: dict[int, tuple[np.ndarray, str]] = {}
            items = list(enumerate(batch))
            n_workers = 1 if len(items) < 16 else workers
            for chunk in run_chunks(_decode_chunk, split_chunks(items, n_workers),
                                    saved.input_size, saved.channels, workers=n_workers):
                for index, pixels, text in chunk:
                    if pixels is None:
                        outcome.skipped.append((batch[index], text))
                    else:
                        decoded[index] = (pixels, text)
            order = sorted(decoded)
            if order:
                image_set = ImageSet(
                    images=np.stack([decoded[i][0] for i in order]), labels=None,
                    ids=np.asarray([batch[i] for i in order], dtype=str),
                    content_hashes=np.asarray([decoded[i][1] for i in order], dtype=str),
                    groups=np.asarray([batch[i] for i in order], dtype=str))
                p = validate_probabilities(saved.info["model"],
                                           saved.plugin.predict_proba(image_set), len(order),
                                           "the given images")
                outcome.predictions += [
                    Prediction(batch[i], round(float(q), 6), LABELS[int(q >= saved.threshold)])
                    for i, q in zip(order, p, strict=True)]
            advance(len(batch))
    outcome.skipped.sort()
    outcome.seconds = time.perf_counter() - start
    return outcome
