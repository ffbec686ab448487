"""Weights resolution: random, local path, bare name in $CXRBENCH_WEIGHTS_DIR, imagenet download."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxrbench.plugins import weights as w


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "mine.weights.h5").write_bytes(b"not really hdf5")
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(folder))
    return folder


@pytest.mark.parametrize("spec", [None, "random", "none", ""])
def test_random_init(spec: str | None) -> None:
    resolved = w.resolve_weights(spec)
    assert resolved.source == "random" and resolved.path is None and resolved.sha256 is None
    assert resolved.keras_weights_arg is None


def test_local_path_records_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    path.write_bytes(b"abc")
    resolved = w.resolve_weights(str(path))
    assert resolved.source == "file" and resolved.path == path.resolve()
    assert resolved.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert resolved.info()["weights_sha256"] == resolved.sha256


def test_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(w.WeightsError, match="does not exist"):
        w.resolve_weights(str(tmp_path / "nope.h5"))


def test_bare_name_is_found_in_the_weights_dir(weights_dir: Path) -> None:
    resolved = w.resolve_weights("mine.weights.h5")
    assert resolved.source == "weights_dir" and resolved.path == weights_dir / "mine.weights.h5"
    assert resolved.sha256 == hashlib.sha256(b"not really hdf5").hexdigest()


def test_unknown_bare_name_lists_what_is_there(weights_dir: Path) -> None:
    with pytest.raises(w.WeightsError, match="available: mine.weights.h5"):
        w.resolve_weights("other.h5")


def test_bare_name_without_weights_dir_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    with pytest.raises(w.WeightsError, match=w.WEIGHTS_DIR_ENV):
        w.resolve_weights("mine.weights.h5")


def test_imagenet_prefers_the_offline_copy(weights_dir: Path) -> None:
    known = w.IMAGENET_NO_TOP[("MobileNetV2", 0.35)]
    (weights_dir / known.local_names[0]).write_bytes(b"v2")
    resolved = w.resolve_weights("imagenet", backbone="MobileNetV2", alpha=0.35)
    assert resolved.source == "weights_dir" and resolved.path.name == known.local_names[0]
    assert resolved.sha256 == hashlib.sha256(b"v2").hexdigest()


def test_imagenet_for_other_backbones_is_left_to_keras() -> None:
    resolved = w.resolve_weights("imagenet", backbone="EfficientNetB0")
    assert resolved.source == "keras" and resolved.keras_weights_arg == "imagenet"
    assert resolved.sha256 is None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A local HTTP server on 127.0.0.1 serving one weights file; yields (url, content)."""
    root = tmp_path / "www"
    root.mkdir()
    content = os.urandom(4096)
    (root / "backbone_no_top.h5").write_bytes(content)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/backbone_no_top.h5", content
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_the_hash_and_caches(served: tuple[str, bytes], tmp_path: Path) -> None:
    pytest.importorskip("keras")
    url, content = served
    digest = hashlib.sha256(content).hexdigest()
    known = w.WeightsFile(fname="backbone_no_top.h5", origin=url, file_hash=digest)
    path = w.download_weights(known, cache_dir=tmp_path / "cache")
    assert path.read_bytes() == content and path.parent.name == "models"
    # Second call: served from the cache, even with the origin gone.
    again = w.download_weights(known, cache_dir=tmp_path / "cache",
                               origin="http://127.0.0.1:9/gone.h5")
    assert again == path


def test_download_rejects_a_wrong_hash(served: tuple[str, bytes], tmp_path: Path) -> None:
    pytest.importorskip("keras")
    url, _ = served
    known = w.WeightsFile(fname="backbone_no_top.h5", origin=url, file_hash="0" * 64)
    with pytest.raises(w.WeightsError, match="corrupted|hash"):
        w.download_weights(known, cache_dir=tmp_path / "cache")


def test_download_failure_says_how_to_work_offline(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    known = w.WeightsFile(fname="x.h5", origin="http://127.0.0.1:9/x.h5")
    with pytest.raises(w.WeightsError, match=w.WEIGHTS_DIR_ENV):
        w.download_weights(known, cache_dir=tmp_path / "cache")


def test_imagenet_downloads_when_no_offline_copy(
    served: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("keras")
    url, content = served
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setitem(w.IMAGENET_NO_TOP, ("TinyNet", 1.0), w.WeightsFile(
        fname="backbone_no_top.h5", origin=url, file_hash=hashlib.sha256(content).hexdigest()))
    resolved = w.resolve_weights("imagenet", backbone="TinyNet", alpha=1.0,
                                 cache_dir=tmp_path / "cache")
    assert resolved.source == "download"
    assert resolved.sha256 == hashlib.sha256(content).hexdigest()


def test_shipped_offline_weights_match_their_checksums() -> None:
    folder = w.weights_dir()
    if folder is None or not (folder / "SHA256SUMS").is_file():
        pytest.skip(f"{w.WEIGHTS_DIR_ENV} not set (or has no SHA256SUMS): offline weights test")
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert w.sha256_file(folder / name) == digest
    mobilenet = w.IMAGENET_NO_TOP[("MobileNet", 0.25)]
    if (folder / mobilenet.fname).is_file():  # the official file: the download hash must match
        assert w.sha256_file(folder / mobilenet.fname) == mobilenet.file_hash
