"""Ingestion speed: cxrbench's cached loader against the obvious alternatives, same run.

Cold load (fresh cache folder each round, file hashing included) of a folder at 128 px
grayscale, side by side with ``keras.utils.image_dataset_from_directory`` (iterated fully) and a
plain single-process Pillow loop (open, convert, resize; no draft), on

- the original-resolution sample (``$CXRBENCH_ORIGINALS``: flat NORMAL/ + PNEUMONIA/), and
- the 224 px copy (``$CXRBENCH_DATA``), its ``train/`` folder (Keras reads one class-folder
  tree, so every loader gets that same folder);

plus the warm load of all images of ``$CXRBENCH_DATA`` at 128 px, and the interleaved A/B
test behind the README's ingestion figures (``test_cold_originals_interleaved``: every
contender in a fresh process per round, rounds interleaved, medians of at least 5). Files are
read once before
timing so every contender starts with the same page cache. Besides wall time, each test records
the CPU seconds it used (this process, its threads, its worker processes): on a shared machine
wall time depends on the neighbours, CPU time per image much less. Run:

    CXRBENCH_DATA=... CXRBENCH_ORIGINALS=... pytest benchmarks/test_ingestion.py
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data import ImageCache, load_dataset

SIZE = 128


def _folder(var: str, sub: str = "") -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} not set: ingestion benchmark on real data")
    folder = Path(value) / sub
    for path in folder.rglob("*"):  # same page cache for every contender
        if path.is_file():
            path.read_bytes()
    return folder


@pytest.fixture(scope="module")
def originals() -> Path:
    return _folder("CXRBENCH_ORIGINALS")


@pytest.fixture(scope="module")
def copy_train() -> Path:
    return _folder("CXRBENCH_DATA", "train")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in (".jpeg", ".jpg", ".png") and not p.name.startswith("."))


def _cpu_seconds() -> float:
    """CPU time of this process, its threads and its reaped children, including the workers
    that a forkserver (used once TensorFlow is imported) forked on our behalf."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    server = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    if server:
        try:
            import psutil

            times = psutil.Process(server).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except Exception:  # noqa: BLE001  # the server is gone: nothing more to count
            pass
    return total


def _timed_cpu(fn, cpu: list[float]):  # type: ignore[no-untyped-def]
    def run(*args):  # type: ignore[no-untyped-def]
        start = _cpu_seconds()
        result = fn(*args)
        cpu.append(_cpu_seconds() - start)
        return result

    return run


def _record(benchmark, n: int, cpu: list[float]) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["images"] = n
    if cpu:
        benchmark.extra_info["cpu_ms_per_image"] = round(1000 * min(cpu) / n, 3)
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = round(n / benchmark.stats.stats.mean, 1)
        benchmark.extra_info["images_per_s_best"] = round(n / benchmark.stats.stats.min, 1)


def _cxrbench_cold(benchmark, folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rounds = iter(range(100))

    def setup():  # type: ignore[no-untyped-def]
        for old in tmp_path.glob("cache-*"):  # keep one round's cache on disk at a time
            shutil.rmtree(old)
        return (tmp_path / f"cache-{next(rounds)}",), {}

    def run(cache_dir: Path) -> tuple[int, ...]:
        ds = load_dataset(folder, cache_dir=cache_dir)
        return ImageCache(cache_dir).load(ds.records, SIZE, 1).images.shape

    cpu: list[float] = []
    shape = benchmark.pedantic(_timed_cpu(run, cpu), setup=setup, rounds=3, iterations=1)
    assert shape == (len(_images(folder)), SIZE, SIZE, 1)
    _record(benchmark, shape[0], cpu)


def _keras(benchmark, folder: Path) -> None:  # type: ignore[no-untyped-def]
    keras = pytest.importorskip("keras")  # TensorFlow is imported here, outside the timing

    def run() -> int:
        ds = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", color_mode="grayscale", image_size=(SIZE, SIZE),
            batch_size=64, shuffle=False, verbose=False)
        return sum(int(x.shape[0]) for x, _ in ds)

    cpu: list[float] = []
    n = benchmark.pedantic(_timed_cpu(run, cpu), rounds=2, iterations=1)
    assert n == len(_images(folder))
    _record(benchmark, n, cpu)


def _pil_loop(benchmark, folder: Path) -> None:  # type: ignore[no-untyped-def]
    paths = _images(folder)

    def run() -> np.ndarray:
        out = np.empty((len(paths), SIZE, SIZE), np.uint8)
        for i, path in enumerate(paths):
            with Image.open(path) as im:
                out[i] = np.asarray(im.convert("L").resize((SIZE, SIZE),
                                                           Image.Resampling.BILINEAR))
        return out

    cpu: list[float] = []
    images = benchmark.pedantic(_timed_cpu(run, cpu), rounds=2, iterations=1)
    _record(benchmark, len(images), cpu)


@pytest.mark.benchmark(group="cold-originals-128px")
def test_cold_originals_cxrbench(benchmark, originals: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _cxrbench_cold(benchmark, originals, tmp_path)


@pytest.mark.benchmark(group="cold-originals-128px")
def test_cold_originals_keras(benchmark, originals: Path) -> None:  # type: ignore[no-untyped-def]
    _keras(benchmark, originals)


@pytest.mark.benchmark(group="cold-originals-128px")
def test_cold_originals_pil_loop(benchmark, originals: Path) -> None:  # type: ignore[no-untyped-def]
    _pil_loop(benchmark, originals)


@pytest.mark.benchmark(group="cold-224copy-train-128px")
def test_cold_copy_cxrbench(benchmark, copy_train: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _cxrbench_cold(benchmark, copy_train, tmp_path)


@pytest.mark.benchmark(group="cold-224copy-train-128px")
def test_cold_copy_keras(benchmark, copy_train: Path) -> None:  # type: ignore[no-untyped-def]
    _keras(benchmark, copy_train)


@pytest.mark.benchmark(group="cold-224copy-train-128px")
def test_cold_copy_pil_loop(benchmark, copy_train: Path) -> None:  # type: ignore[no-untyped-def]
    _pil_loop(benchmark, copy_train)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = _folder("CXRBENCH_DATA")
    cache_dir = tmp_path_factory.mktemp("warm-cache")
    ImageCache(cache_dir).load(load_dataset(root, cache_dir=cache_dir).records, SIZE, 1)
    return root, cache_dir


@pytest.mark.benchmark(group="warm-all-128px")
def test_warm_load_dataset_and_images(benchmark, warm_cache) -> None:  # type: ignore[no-untyped-def]
    root, cache_dir = warm_cache

    def run() -> np.ndarray:
        ds = load_dataset(root, cache_dir=cache_dir)
        got = ImageCache(cache_dir).load(ds.records, SIZE, 1)
        assert got.n_decoded == 0
        return got.images

    images = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert isinstance(images, np.memmap)
    _record(benchmark, len(images), [])


@pytest.mark.benchmark(group="warm-all-128px")
def test_warm_images_only(benchmark, warm_cache) -> None:  # type: ignore[no-untyped-def]
    root, cache_dir = warm_cache
    records = load_dataset(root, cache_dir=cache_dir).records
    images = benchmark.pedantic(lambda: ImageCache(cache_dir).load(records, SIZE, 1).images,
                                rounds=10, iterations=1, warmup_rounds=1)
    _record(benchmark, len(images), [])


ROUNDS = max(5, int(os.environ.get("CXRBENCH_AB_ROUNDS", "5")))
CONTENDERS = ("cxrbench", "keras", "cxrbench_pillow")


@pytest.mark.benchmark(group="cold-originals-128px-interleaved")
def test_cold_originals_interleaved(benchmark, originals: Path) -> None:  # type: ignore[no-untyped-def]
    """cxrbench (simplejpeg), Keras and cxrbench with Pillow's decoder, each cold in a fresh
    process, rounds interleaved: the medians and the cxrbench/Keras ratio in extra_info."""
    from abtest import interleave, machine_note, median, run_probe

    note = machine_note()
    arms = {c: (lambda c=c: run_probe("ingest_probe.py", [c, str(originals), str(SIZE)]))
            for c in CONTENDERS}
    runs = benchmark.pedantic(lambda: interleave(arms, ROUNDS), rounds=1, iterations=1)
    n = len(_images(originals))
    table = {}
    for name, results in runs.items():
        assert all(r["images"] == n for r in results), name
        table[name] = {"wall_s_median": round(median(results, "wall_s"), 3),
                       "images_per_s_median": round(n / median(results, "wall_s"), 1),
                       "cpu_ms_per_image_median": median(results, "cpu_ms_per_image"),
                       "wall_s": [r["wall_s"] for r in results],
                       "load_1min": [r["load_1min"] for r in results]}
    ratio = {f"{name}/keras": round(table["keras"]["wall_s_median"]
                                     / table[name]["wall_s_median"], 3)
             for name in table if name != "keras"}
    per_round = [round(k["wall_s"] / c["wall_s"], 3)
                 for k, c in zip(runs["keras"], runs["cxrbench"], strict=True)]
    benchmark.extra_info.update(machine=note, load_after=os.getloadavg()[0], rounds=ROUNDS,
                                contenders=table, throughput_ratio=ratio,
                                cxrbench_over_keras_per_round=per_round)
    print(table, ratio, per_round)
