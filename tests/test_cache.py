"""ImageCache: decode once, warm loads decode nothing, failures remembered, atomic writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrbench.data import DataError, ImageCache, decode_image, default_cache_dir, load_dataset
from cxrbench.data import cache as cache_mod


def _no_decoding(*args: object, **kwargs: object) -> np.ndarray:
    raise AssertionError("decoded although the image is cached")


def test_cold_then_warm(synthetic_root: Path, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    rec = load_dataset(synthetic_root).records
    cache = ImageCache(tmp_path / "c")
    cold = cache.load(rec, 32, 1, workers=1)
    assert cold.n_decoded == len(rec) and cold.failed == []
    assert cold.images.shape == (len(rec), 32, 32, 1) and cold.images.dtype == np.uint8
    assert list(cold.record_ids) == list(rec["record_id"])
    np.testing.assert_array_equal(cold.images[5], decode_image(rec["path"].iloc[5], 32, 1))

    monkeypatch.setattr(cache_mod, "decode_image", _no_decoding)
    warm = ImageCache(tmp_path / "c").load(rec, 32, 1, workers=1)
    assert warm.n_decoded == 0
    assert isinstance(warm.images, np.memmap) and not warm.images.flags.writeable  # zero copy
    np.testing.assert_array_equal(warm.images, cold.images)


def test_subsets_and_other_orders_are_gathered(synthetic_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rec = load_dataset(synthetic_root).records
    cache = ImageCache(tmp_path / "c")
    full = np.array(cache.load(rec, 16, 3, workers=1).images)
    monkeypatch.setattr(cache_mod, "decode_image", _no_decoding)
    sub = rec.iloc[::-3]
    got = cache.load(sub, 16, 3, workers=1)
    assert got.n_decoded == 0 and list(got.record_ids) == list(sub["record_id"])
    np.testing.assert_array_equal(got.images, full[::-3])


def test_sizes_and_channels_are_separate_entries(synthetic_root: Path, tmp_path: Path) -> None:
    rec = load_dataset(synthetic_root).records.iloc[:10]
    cache = ImageCache(tmp_path / "c")
    assert cache.load(rec, 16, 1, workers=1).n_decoded == 10
    assert cache.load(rec, 16, 3, workers=1).n_decoded == 10
    assert cache.load(rec, 24, 1, workers=1).n_decoded == 10
    assert cache.load(rec, 16, 1, workers=1).n_decoded == 0


def test_parallel_decode_matches_serial(synthetic_root: Path, tmp_path: Path) -> None:
    rec = load_dataset(synthetic_root).records
    serial = ImageCache(tmp_path / "a").load(rec, 32, 1, workers=1)
    parallel = ImageCache(tmp_path / "b").load(rec, 32, 1, workers=2)
    assert parallel.n_decoded == len(rec)
    np.testing.assert_array_equal(serial.images, parallel.images)


def test_failed_files_are_reported_and_remembered(synthetic_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = shutil.copytree(synthetic_root, tmp_path / "d")
    bad = root / "train" / "NORMAL" / "IM-9999-0001.jpeg"
    bad.write_text("not a jpeg")
    good = load_dataset(root).records
    victim = Path(good["path"].iloc[0])
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated
    rec = load_dataset(root).records
    cache = ImageCache(tmp_path / "c")
    got = cache.load(rec, 32, 1, workers=1)
    assert {f["record_id"] for f in got.failed} == {
        "train/NORMAL/IM-9999-0001.jpeg", rec["record_id"].iloc[0]}
    assert all(f["reason"] and f["path"] for f in got.failed)
    assert len(got.images) == len(rec) - 2 == len(got.record_ids)
    assert "train/NORMAL/IM-9999-0001.jpeg" not in set(got.record_ids)

    with monkeypatch.context() as m:  # warm: failures are not retried
        m.setattr(cache_mod, "decode_image", _no_decoding)
        again = cache.load(rec, 32, 1, workers=1)
        assert again.n_decoded == 0 and len(again.failed) == 2
        assert isinstance(again.images, np.memmap)  # failures compacted out of the shard

    victim.write_bytes(data)  # the file is repaired: its new content hash is a miss
    repaired = cache.load(load_dataset(root).records, 32, 1, workers=1)
    assert repaired.n_decoded == 1 and len(repaired.failed) == 1


def test_separate_builds_merge_into_one_index(synthetic_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rec = load_dataset(synthetic_root).records
    first, second = rec.iloc[:20], rec.iloc[20:]
    assert ImageCache(tmp_path / "c").load(first, 16, 1, workers=1).n_decoded == 20
    assert ImageCache(tmp_path / "c").load(second, 16, 1, workers=1).n_decoded == len(second)
    monkeypatch.setattr(cache_mod, "decode_image", _no_decoding)
    both = ImageCache(tmp_path / "c").load(rec, 16, 1, workers=1)
    assert both.n_decoded == 0 and len(both.images) == len(rec)
    assert not isinstance(both.images, np.memmap)  # two shards: gathered into one array


def test_duplicate_contents_decoded_once(synthetic_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(synthetic_root, tmp_path / "d")
    first = next((root / "test" / "NORMAL").iterdir())
    shutil.copy(first, root / "test" / "NORMAL" / "IM-9998-0001.jpeg")
    rec = load_dataset(root).records
    cache = ImageCache(tmp_path / "c")
    cold = cache.load(rec, 16, 1, workers=1)
    assert cold.n_decoded == len(rec) - 1 and len(cold.images) == len(rec)
    warm = cache.load(rec, 16, 1, workers=1)
    assert isinstance(warm.images, np.memmap)
    np.testing.assert_array_equal(warm.images, cold.images)


def test_interrupted_build_leaves_nothing_visible(synthetic_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rec = load_dataset(synthetic_root).records
    calls = {"n": 0}

    def dies_halfway(path: str, size: int, channels: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return decode_image(path, size, channels)

    monkeypatch.setattr(cache_mod, "decode_image", dies_halfway)
    cache = ImageCache(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        cache.load(rec, 16, 1, workers=1)
    folder = tmp_path / "c" / "images" / "16x1"
    assert sorted(p.name for p in folder.iterdir()) == []  # no shard, no index, no temp file
    monkeypatch.undo()
    assert cache.load(rec, 16, 1, workers=1).n_decoded == len(rec)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_records_need_the_cache_columns(tmp_path: Path) -> None:
    import pandas as pd

    with pytest.raises(DataError, match="content_hash"):
        ImageCache(tmp_path).load(pd.DataFrame({"record_id": [], "path": []}), 16, 1)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CXRBENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cxrbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "cxrbench"
    assert ImageCache().root == default_cache_dir()


def test_progress_bar_runs(synthetic_root: Path, tmp_path: Path) -> None:
    rec = load_dataset(synthetic_root).records.iloc[:12]
    assert len(ImageCache(tmp_path).load(rec, 16, 1, workers=1, progress=True).images) == 12


@pytest.mark.realdata
def test_real_data_warm_load_is_zero_copy(real_data: Path, tmp_path: Path) -> None:
    rec = load_dataset(real_data).records
    cache = ImageCache(tmp_path / "c")
    cold = cache.load(rec, 32, 1)
    assert cold.failed == [] and len(cold.images) == len(rec)
    warm = cache.load(rec, 32, 1)
    assert warm.n_decoded == 0 and isinstance(warm.images, np.memmap)
