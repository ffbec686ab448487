"""One cold ingestion in a fresh process, timed; prints one JSON line.

    python benchmarks/ingest_probe.py CONTENDER FOLDER [SIZE]

Contenders, each reading FOLDER's class folders into (n, SIZE, SIZE, 1) uint8 arrays:

- ``cxrbench``: ``load_dataset`` (file hashes, headers) + ``ImageCache.load`` into an empty
  cache folder: what a first ``cxrbench run`` does (simplejpeg for JPEGs);
- ``cxrbench_pillow``: the same with the simplejpeg path switched off (Pillow's draft mode, the
  decoder before DECODER_VERSION 2);
- ``keras``: ``keras.utils.image_dataset_from_directory`` iterated to the end;
- ``pil_loop``: open, convert, resize in one process (no DCT scaling).

Imports (pandas and cxrbench, or TensorFlow and Keras) happen before the clock starts; the
clock covers everything from the folder to the decoded arrays. CPU seconds include every
thread and every reaped worker process.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abtest import timed  # noqa: E402


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in (".jpeg", ".jpg", ".png") and not p.name.startswith("."))


def main() -> None:
    contender, folder = sys.argv[1], Path(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    if contender.startswith("cxrbench"):
        import pandas  # noqa: F401

        import cxrbench.data.cache
        import cxrbench.data.readers  # noqa: F401
        from cxrbench.data import ImageCache, load_dataset

        if contender == "cxrbench_pillow":
            import cxrbench.data.turbojpeg as turbojpeg

            turbojpeg.simplejpeg = None  # forked decode workers inherit it
        cache = Path(tempfile.mkdtemp(prefix="ingest-"))

        def run() -> int:
            ds = load_dataset(folder, cache_dir=cache)
            return int(ImageCache(cache).load(ds.records, size, 1).images.shape[0])
    elif contender == "keras":
        import keras

        def run() -> int:
            ds = keras.utils.image_dataset_from_directory(
                folder, labels="inferred", color_mode="grayscale", image_size=(size, size),
                batch_size=64, shuffle=False, verbose=False)
            return sum(int(x.shape[0]) for x, _ in ds)
    elif contender == "pil_loop":
        import numpy as np
        from PIL import Image

        def run() -> int:
            paths = _images(folder)
            out = np.empty((len(paths), size, size), np.uint8)
            for i, path in enumerate(paths):
                with Image.open(path) as im:
                    out[i] = np.asarray(im.convert("L").resize((size, size),
                                                               Image.Resampling.BILINEAR))
            return len(paths)
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    n, wall, cpu = timed(run)
    print(json.dumps({"contender": contender, "images": n, "wall_s": round(wall, 4),
                      "cpu_s": round(cpu, 4), "images_per_s": round(n / wall, 1),
                      "cpu_ms_per_image": round(1000 * cpu / n, 3),
                      "load_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
