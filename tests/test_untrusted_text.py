"""Text from results files is untrusted: model names, error messages, paths and hostnames can
hold HTML or Markdown, and evaluation ids can point anywhere.

leaderboard.md and `compare --markdown` (which a CI workflow posts to the GitHub job summary)
are rendered here with a CommonMark renderer that passes raw HTML through, as GitHub's does
before sanitising: no payload may become a tag, a link, an image or table structure. The
report's gallery embeds images from inside the data root only.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from cxrbench.cli import main
from cxrbench.report.gallery import thumbnail_data_uri
from cxrbench.results.io import read_results, write_results
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import run_benchmark

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "[click](javascript:alert(3))",
    "![pixel](https://evil.example/p.png)",
    "a|b` `code`<!--",
    "**bold** _em_ ~~gone~~ # heading &lt;b&gt;",
]
# Tags a leaderboard or a comparison may render to; anything else came from a payload.
ALLOWED_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td",
                "strong", "em", "code", "blockquote"}


def render(markdown: str) -> str:
    """Markdown as HTML, raw HTML passed through (the worst case), GFM tables on."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(
        markdown)


def assert_inert(markdown: str, texts: list[str]) -> None:
    """No payload became markup, and each is shown as written (in some cell or line)."""
    html = render(markdown)
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html))
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert "<!--" not in html and "javascript:" not in re.sub(r">[^<]*<", "><", html)
    shown = re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&quot;", '"').replace("&amp;", "&")
    for text in texts:
        assert text in shown, text


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path
              ) -> tuple[Path, Path]:
    """A finished run (majority, pixels_logreg) and a writable copy of its data."""
    root = tmp_path_factory.mktemp("untrusted")
    data = Path(shutil.copytree(synthetic_root, root / "data"))
    outcome = run_benchmark(RunConfig(
        data_path=data, models=[ModelSpec("majority"), ModelSpec("pixels_logreg")], seeds=[0],
        out_dir=root / "out", cache_dir=root / "cache", executor="inline", report=False))
    assert outcome.n_ok == 2
    return outcome.results_path, data


def crafted(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with a payload for every model name, and a failed job whose error holds
    the others."""
    out = copy.deepcopy(results)
    for record, name in zip(out["records"], PAYLOADS, strict=False):
        record["model"] = name
        record["job_id"] = f"{name}[seed=0]"
    failed = copy.deepcopy(out["records"][0])
    failed.update(model=PAYLOADS[2], job_id=f"{PAYLOADS[2]}[seed=0]", status="error",
                  error={"type": "<b>Err</b>", "message": " ".join(PAYLOADS), "traceback": None})
    out["records"].append(failed)
    out["provenance"]["hostname"] = PAYLOADS[1]
    return out


def test_leaderboard_markdown_escapes_every_payload(clean_run, tmp_path, capsys):
    path, data = clean_run
    evil = write_results(tmp_path / "evil" / "results.json", crafted(read_results(path)))
    assert main(["report", str(evil), "--data", str(data)]) == 0
    markdown = (evil.parent / "leaderboard.md").read_text()
    assert_inert(markdown, PAYLOADS[:2] + ["<b>Err</b>"])
    html = (evil.parent / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html


def test_compare_markdown_escapes_every_payload(clean_run, tmp_path):
    path, _ = clean_run
    base = crafted(read_results(path))
    worse = copy.deepcopy(base)
    worse["records"][1]["metrics"]["test"]["roc_auc"] = 0.0  # a regression, with its text
    worse["records"][0]["params"] = {"x": PAYLOADS[0]}  # a note quoting a parameter
    base_path = write_results(tmp_path / PAYLOADS[3].replace("/", "_") / "base.json", base)
    cand_path = write_results(tmp_path / "cand.json", worse)
    summary = tmp_path / "summary.md"
    assert main(["compare", str(base_path), str(cand_path), "--markdown", str(summary)]) == 1
    markdown = summary.read_text()
    assert "### Regressions" in markdown and "### Notes" in markdown
    assert_inert(markdown, PAYLOADS[:2] + [f"x None -> {PAYLOADS[0]!r}"])


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_gallery_never_reads_outside_the_data_root(clean_run, tmp_path, capsys, where):
    path, data = clean_run
    secret = tmp_path / "secret.png"
    shutil.copy(next(data.rglob("*.jpeg")), secret)
    results = read_results(path)
    ok = write_results(tmp_path / "ok" / "results.json", results)
    assert main(["report", str(ok), "--data", str(data)]) == 0
    assert "data:image/jpeg;base64," in (ok.parent / "report.html").read_text()  # control

    escape = (str(secret) if where == "absolute"
              else "/".join([".."] * len(data.parts)) + str(secret))
    results["evaluation"]["test"]["ids"] = [escape] * len(results["evaluation"]["test"]["ids"])
    evil = write_results(tmp_path / "evil" / "results.json", results)
    assert main(["report", str(evil), "--data", str(data)]) == 0
    html = (evil.parent / "report.html").read_text()
    assert thumbnail_data_uri(secret) not in html
    assert "data:image/jpeg;base64," not in html
    assert "could not be read under" in html
    assert json.loads(evil.read_text())["evaluation"]["test"]["ids"][0] == escape


@pytest.mark.parametrize("text", [*PAYLOADS, "hog_svm", "_x_", "# h", "1. one", "- item",
                                  "> quote", "a -> b", "<!-- c -->", "&amp;", "\\*", "`"])
def test_escaped_text_renders_exactly_as_written(text):
    from cxrbench.report.markdown import code_span, escape_markdown

    for markdown in (f"- {escape_markdown(text)}\n",
                     f"| a | b |\n|---|---|\n| {escape_markdown(text)} | x |\n",
                     f"- {code_span(text)}\n"):
        html = render(markdown)
        assert set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html)) <= ALLOWED_TAGS, html
        cell = re.search(r"<(?:li|td)>(.*?)</(?:li|td)>", html, re.S)[1]
        shown = re.sub(r"</?code>", "", cell).replace("&lt;", "<").replace("&gt;", ">") \
            .replace("&quot;", '"').replace("&amp;", "&")
        assert shown == text, (markdown, html)
