"""Bad inputs through the CLI: each gives a clear message and exit code, and loses nothing.

Unreadable images are skipped with a warning naming them and counted in the results (exit 0);
RGBA and 16-bit PNGs just work; bad data, names or suite files are exit 2 before any work;
failing plugins are error/timeout records next to the other models' records (exit 1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import psutil
import pytest
from data_helpers import results
from PIL import Image

from cxrbench.cli import main

BAD_FILES = {  # record id -> how it is broken
    "train/NORMAL/IM-9001-0001.jpeg": "truncated",
    "train/PNEUMONIA/person901_bacteria_1.jpeg": "corrupt",
    "test/NORMAL/IM-9002-0001.png": "not an image",
}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Broken copies of a small synthetic data set, one per kind of damage."""
    from cxrbench.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("bad")
    base = make_synthetic_dataset(root / "base", n_train=(12, 12), n_test=(6, 6), size=48)

    def copy(name: str) -> Path:
        return Path(shutil.copytree(base, root / name))

    out = {"base": base}
    out["corrupt"] = data = copy("corrupt")
    good = next((data / "train/NORMAL").glob("*.jpeg")).read_bytes()
    for record_id, how in BAD_FILES.items():
        target = data / record_id
        if how == "truncated":
            target.write_bytes(good[: len(good) // 2])
        elif how == "corrupt":
            target.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
        else:
            target.write_text("this is not an image\n")
    out["empty_class"] = data = copy("empty_class")
    shutil.rmtree(data / "test/NORMAL")
    (data / "test/NORMAL").mkdir()
    out["one_class"] = data = copy("one_class")
    for split in ("train", "test"):
        shutil.rmtree(data / split / "NORMAL")
    out["pngs"] = data = copy("pngs")
    for i, path in enumerate(sorted(data.rglob("*.jpeg"))[::2]):
        gray = np.asarray(Image.open(path).convert("L"))
        if i % 2:
            image = Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 200)]), "RGBA")
        else:  # 16 bit, using part of the range with an offset, as DICOM exports do
            image = Image.fromarray(gray.astype(np.uint16) * 16 + 1000)
        image.save(path.with_suffix(".png"))
        path.unlink()
    return out


def run(capsys: pytest.CaptureFixture, data: Path, out: Path, *args: str) -> tuple[int, str]:
    code = main(["run", "--data", str(data), "--out", str(out), "--executor", "inline",
                 "--no-report", *args])
    return code, capsys.readouterr().err


def test_unreadable_images_are_skipped_named_and_counted(variants, tmp_path, capsys):
    code, err = run(capsys, variants["corrupt"], tmp_path, "--models", "majority")
    assert code == 0
    for record_id in BAD_FILES:
        assert f"warning: skipping unreadable image {record_id}" in err
    assert "image file is truncated" in err and "cannot identify image file" in err
    data = results(tmp_path)
    assert data["provenance"]["data"]["unreadable"] == sorted(BAD_FILES)
    assert data["records"][0]["skipped_images"]["count"] == len(BAD_FILES)
    assert "test/NORMAL/IM-9002-0001.png" not in data["evaluation"]["test"]["ids"]


def test_rgba_and_16_bit_pngs_work(variants, tmp_path, capsys):
    modes = {Image.open(p).mode for p in variants["pngs"].rglob("*.png")}
    assert modes == {"RGBA", "I;16"}
    code, err = run(capsys, variants["pngs"], tmp_path, "--models", "majority")
    assert code == 0, err
    data = results(tmp_path)
    assert data["provenance"]["data"]["unreadable"] == []
    assert data["records"][0]["skipped_images"]["count"] == 0
    assert len(data["evaluation"]["test"]["ids"]) == 12


@pytest.mark.parametrize(("variant", "args", "message"), [
    ("empty_class", [], "class folder {data}/test/NORMAL has no images"),
    ("one_class", [], "has only PNEUMONIA; a pneumonia benchmark needs both NORMAL and PNEUMONIA"),
    ("missing", [], "data set path {data} does not exist"),
    ("base", ["--models", "majorty"], "Unknown model 'majorty'. Did you mean: majority?"),
    ("base", ["--suite", "{tmp}/typo.toml"], "suite typo: unknown key(s) ['sedes']"),
    ("base", ["--timeout", "soon"], "--timeout 'soon': expected SECONDS or MODEL=SECONDS"),
    ("base", ["--dask-workers", "2"], "--dask-workers: for the Dask executor only"),
])
def test_bad_input_is_exit_2_with_a_message(variants, tmp_path, capsys, variant, args, message):
    data = variants.get(variant, tmp_path / "nowhere")
    (tmp_path / "typo.toml").write_text('seeds = [0]\nsedes = [1]\n[[models]]\nname = "majority"\n')
    args = [a.format(tmp=tmp_path) for a in args] or ["--models", "majority"]
    code, err = run(capsys, data, tmp_path / "out", *args)
    assert code == 2
    assert message.format(data=data) in err
    assert err.startswith("cxrbench: error: ") and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_bad_input_on_resume_loses_nothing(variants, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, variants["base"], out, "--models", "majority")[0] == 0
    before = (out / "results.json").read_bytes()
    attempts = [
        (variants["base"], ["--models", "majority"], "already exists: pass --resume"),
        (variants["base"], ["--models", "majorty", "--resume"], "Did you mean: majority?"),
        (tmp_path / "nowhere", ["--models", "majority", "--resume"], "does not exist"),
        (variants["one_class"], ["--models", "majority", "--resume"], "has only PNEUMONIA"),
    ]
    for data, args, message in attempts:
        code, err = run(capsys, data, out, *args)
        assert (code, message in err) == (2, True), err
        assert (out / "results.json").read_bytes() == before


@pytest.mark.slow
def test_failing_plugins_are_records_and_the_run_goes_on(faults, variants, tmp_path, capsys):
    """A plugin that raises, one that returns NaN, one past its timeout (set in the suite)."""
    suite = tmp_path / "faults.toml"
    suite.write_text("seeds = [0]\n" + "".join(
        f'[[models]]\nname = "{name}"\n' for name in ("fault_raises", "fault_nan", "majority"))
        + '[[models]]\nname = "fault_sleep"\ntimeout_s = 2\n')
    out = tmp_path / "out"
    code = main(["run", "--data", str(variants["base"]), "--suite", str(suite), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    records = {r["model"]: r for r in results(out)["records"]}
    assert records["majority"]["status"] == "ok"
    assert records["fault_raises"]["error"]["type"] == "RuntimeError"
    assert "deliberate failure in fit" in records["fault_raises"]["error"]["traceback"]
    assert records["fault_nan"]["error"]["type"] == "InvalidPredictionError"
    assert "non-finite (NaN/inf) probabilities" in records["fault_nan"]["error"]["message"]
    assert records["fault_sleep"]["status"] == "timeout"
    assert "exceeded its 2 s timeout" in records["fault_sleep"]["error"]["message"]
    assert "TIMEOUT timeout: fault_sleep[seed=0] exceeded its 2 s timeout" in err
    assert results(out)["summary"]["majority"]["n_ok"] == 1
    assert (out / "report.html").is_file()
    # The timed-out job's process was killed, not left sleeping.
    assert not [p for p in psutil.Process().children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())]
