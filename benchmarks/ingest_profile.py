"""Where a cold ingestion's CPU time goes, per image, on the original JPEGs (one process).

    python benchmarks/ingest_profile.py FOLDER [SIZE]

Times each stage of cxrbench's cold path on every JPEG under FOLDER (best of 3 passes, CPU
seconds of this process, files already in the page cache) and, for comparison, the decode and
resize that ``keras.utils.image_dataset_from_directory`` does (TensorFlow's ``decode_jpeg`` at
full size, then ``resize``). The entropy (Huffman) decoding, which any JPEG decoder must do in
full whatever the output size, is estimated by libjpeg-turbo's 1/8-scale decode (almost no
inverse DCT, no upsampling). Prints one JSON object: milliseconds per image per stage.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path


def _best(fn, items, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - t0)
    return 1000 * best / len(items)


def main() -> None:
    folder = Path(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import simplejpeg
    from PIL import Image

    from cxrbench.data.decode import decode_image, read_header
    from cxrbench.data.turbojpeg import draft_scale

    paths = sorted(p for p in folder.rglob("*.jpeg"))
    blobs = [p.read_bytes() for p in paths]
    scaled = []
    for b in blobs:
        h, w, _, _ = simplejpeg.decode_jpeg_header(b)
        s = draft_scale(w, h, size)
        scaled.append(simplejpeg.decode_jpeg(b, "GRAY", min_height=-(-h // s),
                                             min_width=-(-w // s))[:, :, 0])
    out = {
        "images": len(paths),
        "mean_file_kb": round(sum(map(len, blobs)) / len(blobs) / 1024, 1),
        "sha256 of the file": _best(lambda b: hashlib.sha256(b).digest(), blobs),
        "header (Pillow open)": _best(read_header, paths),
        "decode at Pillow's draft scale (simplejpeg)": _best(
            lambda b: simplejpeg.decode_jpeg(b, "GRAY", min_height=size, min_width=size),
            blobs),
        "resize to size (Pillow)": _best(
            lambda a: Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR,
                                                reducing_gap=3.0), scaled),
        "decode_image (all of the above but hashing)": _best(
            lambda p: decode_image(p, size, 1), paths),
        "decode_image, Pillow draft mode": None,
        "Pillow draft decode + resize": _best(
            lambda b: _pillow_draft(b, size), blobs),
    }
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out["TensorFlow decode_jpeg, full size"] = _best(
        lambda b: tf.io.decode_jpeg(b, channels=1), blobs)
    out["TensorFlow decode_jpeg + resize (Keras' loader)"] = _best(
        lambda b: tf.image.resize(tf.io.decode_jpeg(b, channels=1), (size, size)), blobs)
    import cxrbench.data.turbojpeg as turbojpeg

    turbojpeg.simplejpeg = None
    out["decode_image, Pillow draft mode"] = _best(lambda p: decode_image(p, size, 1), paths)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()},
                     indent=1))


def _pillow_draft(blob: bytes, size: int):  # type: ignore[no-untyped-def]
    from PIL import Image

    im = Image.open(io.BytesIO(blob))
    im.draft("L", (size, size))
    return im.convert("L").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


if __name__ == "__main__":
    main()
