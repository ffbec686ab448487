"""Full, read-only and forbidden output folders: one line saying what, where and what to do.

Before, a full or read-only `--out`, or an `--out`/`--cache-dir` that is an existing file, gave
tracebacks with exit 1 after the data and cache were prepared, and left status `running`. Now
the folders are checked before any data is read, and a write fault during a run stops it with
exit 2, no temporary file left, every finished record kept (status `interrupted` on a full
disk, thanks to a reserve file) and `--resume` finishing the run. Real faults on a small tmpfs
where this machine lets the tests mount one; injected faults everywhere (as root, EACCES can
only be injected: root writes through permission bits).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from fs_helpers import fill, leftovers, mounted_tmpfs, remount
from process_helpers import run_to_end, start_run, wait_for_records

from cxrbench.cli import main
from cxrbench.results.io import read_results
from cxrbench.run.lock import LOCK_FILE
from cxrbench.run.output import RESERVE_FILE

THREE_JOBS = ("--models", "majority,fault_sleep,pixels_logreg", "--seeds", "0",
              "--param", "fault_sleep.sleep_s=4", "--no-report")


def run_majority(out: Path, data: Path, *extra: str | Path) -> int:
    return main(["run", "--data", str(data), "--out", str(out), "--models", "majority",
                 "--seeds", "0", "--executor", "inline", *map(str, extra)])


@pytest.fixture
def tmpfs(tmp_path: Path):
    with mounted_tmpfs(tmp_path / "mnt", "4m") as where:
        yield where


@pytest.mark.slow
def test_full_output_disk_mid_run_keeps_every_record_and_resume_finishes(
        tmpfs, synthetic_root, tmp_path):
    out, cache = tmpfs / "out", str(tmp_path / "cache")
    proc = start_run(out, synthetic_root, *THREE_JOBS, "--cache-dir", cache)
    wait_for_records(proc, out / "results.json", 1)  # majority saved; fault_sleep sleeps 4 s
    filler = fill(tmpfs)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert (f"cxrbench: error: cannot write the results {out / 'results.json'}: no space left "
            "on the device; free space there, or choose another --out (2 record(s) kept in "
            f"{out / 'results.json'} (status interrupted); rerun with --resume once fixed)"
            ) in stderr
    assert "Traceback" not in stderr
    stopped = read_results(out / "results.json")
    assert stopped["run"]["status"] == "interrupted"
    assert [r["model"] for r in stopped["records"]] == ["majority", "fault_sleep"]
    assert leftovers(out) == [] and not (out / RESERVE_FILE).exists()

    filler.unlink()
    resumed = run_to_end(out, synthetic_root, *THREE_JOBS, "--cache-dir", cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: 2 finished job(s) kept, 1 to run" in resumed.stderr
    final = read_results(out / "results.json")
    assert final["run"]["status"] == "complete"
    assert [r["model"] for r in final["records"]] == ["majority", "fault_sleep", "pixels_logreg"]
    assert final["records"][:2] == stopped["records"]


@pytest.mark.slow
def test_output_made_read_only_mid_run_keeps_the_last_file_and_resume_finishes(
        tmpfs, synthetic_root, tmp_path):
    out, cache = tmpfs / "out", str(tmp_path / "cache")
    proc = start_run(out, synthetic_root, *THREE_JOBS, "--cache-dir", cache)
    wait_for_records(proc, out / "results.json", 1)
    remount(tmpfs, "ro")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert (f"cannot write the results {out / 'results.json'}: the file system is read-only; "
            "use a writable folder, or choose another --out "
            f"({out / 'results.json'} keeps its last complete state; rerun with --resume once "
            "fixed)") in stderr
    stopped = read_results(out / "results.json")  # valid: the last atomic write
    assert [r["model"] for r in stopped["records"]] == ["majority"]

    remount(tmpfs, "rw")
    resumed = run_to_end(out, synthetic_root, *THREE_JOBS, "--cache-dir", cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # The stopped run could not delete its lock on a read-only disk: taken over, with a note.
    assert f"note: took over the lock of {out} left by pid {proc.pid}" in resumed.stderr
    final = read_results(out / "results.json")
    assert final["run"]["status"] == "complete" and len(final["records"]) == 3
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "split_plan.json"]


def test_full_output_disk_before_the_run_is_refused(tmpfs, synthetic_root, capsys):
    out = tmpfs / "out"
    out.mkdir()
    fill(tmpfs)
    assert run_majority(out, synthetic_root, "--no-report") == 2
    err = capsys.readouterr().err
    assert (f"cannot write the lock file {out / LOCK_FILE}: no space left on the device; "
            "free space there, or choose another --out") in err
    assert not (out / "results.json").exists()


def test_read_only_out_is_refused_before_the_data_is_read(tmp_path, capsys):
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        code = run_majority(ro / "out", tmp_path / "no-data-here")
    assert code == 2
    assert (f"output folder {ro / 'out'} is not writable: the file system is read-only; use "
            "a writable folder, or pass --out with another folder") in capsys.readouterr().err


def test_report_on_a_read_only_disk_is_one_line(tmp_path, synthetic_root, capsys):
    out = tmp_path / "out"
    assert run_majority(out, synthetic_root, "--no-report") == 0
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        code = main(["report", str(out / "results.json"), "-o", str(ro / "report.html")])
    assert code == 2
    err = capsys.readouterr().err
    assert (f"cxrbench: error: cannot write file {ro / 'report.html'}: the file system is "
            "read-only; use a writable folder") in err
    assert "Traceback" not in err


# ---------------------------------------------------------- checked before any data is read
@pytest.mark.parametrize(("case", "message"), [
    ("out is a file", "output folder {out} is an existing file, not a folder; pass --out "
                      "with a folder path"),
    ("out under a file", "output folder {out} cannot be created: a part of that path is a "
                         "file; pass --out with a folder path"),
    ("cache is a file", "cache folder {cache} is an existing file, not a folder; pass "
                        "--cache-dir with a folder path"),
])
def test_unusable_folders_are_exit_2_before_any_data_is_read(tmp_path, capsys, case, message):
    file = tmp_path / "a-file"
    file.write_text("not a folder\n")
    out = {"out is a file": file, "out under a file": file / "out"}.get(case, tmp_path / "o")
    cache = file if case == "cache is a file" else tmp_path / "cache"
    code = run_majority(out, tmp_path / "no-data-here", "--cache-dir", cache)
    assert code == 2
    err = capsys.readouterr().err
    assert message.format(out=out, cache=cache) in err
    assert "does not exist" not in err  # the data was never looked at


def test_forbidden_cache_folder_is_exit_2(tmp_path, capsys, monkeypatch):
    """EACCES, injected where the folder is probed (root writes through permission bits)."""
    import cxrbench.files as files

    def forbidden(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(files, "open", forbidden, raising=False)
    code = run_majority(tmp_path / "out", tmp_path / "no-data-here",
                        "--cache-dir", tmp_path / "cache")
    assert code == 2
    assert (f"cache folder {tmp_path / 'cache'} is not writable: permission denied; use a "
            "folder you can write to, or pass --cache-dir with another folder"
            ) in capsys.readouterr().err


# ------------------------------------------------------------------- injected write faults
def test_forbidden_results_write_mid_run_then_resume(synthetic_root, tmp_path, capsys,
                                                     monkeypatch):
    import cxrbench.run.output as output

    real_write, calls = output.write_results, []

    def write_once(path, results):
        calls.append(path)
        if len(calls) > 1:  # the first record's write and the rescue both fail
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_write(path, results)

    out = tmp_path / "out"
    monkeypatch.setattr(output, "write_results", write_once)
    assert run_majority(out, synthetic_root, "--no-report") == 2
    err = capsys.readouterr().err
    assert (f"cannot write the results {out / 'results.json'}: permission denied; use a folder "
            f"you can write to, or choose another --out ({out / 'results.json'} keeps its last "
            "complete state; rerun with --resume once fixed)") in err
    assert read_results(out / "results.json")["records"] == []
    assert leftovers(out) == []

    monkeypatch.setattr(output, "write_results", real_write)
    assert run_majority(out, synthetic_root, "--no-report", "--resume") == 0
    assert read_results(out / "results.json")["run"]["status"] == "complete"


def test_full_disk_writing_the_report_keeps_the_complete_results(synthetic_root, tmp_path,
                                                                  capsys, monkeypatch):
    import cxrbench.report.html as html

    def no_space(path, text, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(html, "atomic_write_text", no_space)
    out = tmp_path / "out"
    assert run_majority(out, synthetic_root) == 2
    err = capsys.readouterr().err
    assert (f"cannot write the report {out / 'report.html'}: no space left on the device; "
            f"free space there, or choose another --out ({out / 'results.json'} holds the "
            f"complete run; `cxrbench report {out / 'results.json'} -o FILE` renders it once "
            "fixed)") in err
    assert read_results(out / "results.json")["run"]["status"] == "complete"


def test_full_disk_writing_the_split_plan_writes_no_results(synthetic_root, tmp_path, capsys,
                                                            monkeypatch):
    from cxrbench.splits import SplitPlan

    def no_space(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(SplitPlan, "save", no_space)
    out = tmp_path / "out"
    assert run_majority(out, synthetic_root) == 2
    assert (f"cannot write the split plan {out / 'split_plan.json'}: no space left on the "
            "device") in capsys.readouterr().err
    assert not out.exists()  # nothing in it: the folder the run made is gone too


def test_cache_on_a_full_disk_is_a_message(tmpfs, synthetic_root, tmp_path, capsys):
    """Whatever the image cache raises on a full disk, `run` says so in one line, exit 2."""
    data = Path(shutil.copytree(synthetic_root, tmp_path / "data"))
    fill(tmpfs)
    code = run_majority(tmp_path / "out", data, "--cache-dir", tmpfs / "cache", "--no-report")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "cache" in err.splitlines()[-1]
    assert json.dumps(leftovers(tmpfs)) == "[]"


def test_cache_space_is_checked_before_any_image_is_decoded(tmp_path, synthetic_root, capsys):
    """hog_svm's 128 px cache of the 36 images needs 577 KB: on a 512 KB disk the first shard
    would fit, the whole would not; the run stops before decoding anything."""
    with mounted_tmpfs(tmp_path / "mnt", "512k") as small:
        code = main(["run", "--data", str(synthetic_root), "--out", str(tmp_path / "out"),
                     "--models", "hog_svm", "--seeds", "0", "--cache-dir", str(small / "c")])
        decoded = list(small.rglob("*.npy"))
    err = capsys.readouterr().err
    assert code == 2
    assert (f"cannot write the image cache in {small / 'c'}: no space left on the device "
            "(needs about 577 KB,") in err
    assert "point --cache-dir (or CXRBENCH_CACHE_DIR) at another disk" in err
    assert "cache: train" not in err and decoded == []
    assert not (tmp_path / "out").exists()
