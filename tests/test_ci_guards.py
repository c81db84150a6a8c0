"""CI's own promises: the report's browser checks fail (never skip) under ``CI=true`` when no
Chromium is found, saying how to install it; and ``make test`` deselects nothing that the docs
cite as evidence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_browser_fails_the_browser_tests_under_ci_and_skips_them_elsewhere(tmp_path):
    browser_test = "tests/test_report.py::test_report_renders_in_headless_chromium_without_errors"
    env = {**os.environ, "TLBENCH_CHROMIUM": str(tmp_path / "no-such-chromium")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", browser_test]
    in_ci = subprocess.run(command, env={**env, "CI": "true"}, cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300)
    assert in_ci.returncode == 1, in_ci.stdout[-3000:]
    assert "1 failed" in in_ci.stdout and "apt-get install -y chromium" in in_ci.stdout
    assert "never skip in CI" in in_ci.stdout
    elsewhere = subprocess.run(command, env={k: v for k, v in env.items() if k != "CI"}, cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=300)
    assert elsewhere.returncode == 0 and "1 skipped" in elsewhere.stdout, elsewhere.stdout[-3000:]
    assert "apt-get install -y chromium" in elsewhere.stdout


def test_no_test_cited_as_evidence_is_marked_slow():
    """Tests the docs cite as evidence (``[`test_file.py::test_name...`]``, ``[`..._part_...`]``,
    and test files named ``tests/test_x.py``) exist and are not ``slow``: ``make test`` (CI) runs
    what the docs promise."""
    texts = [p.read_text(encoding="utf-8") for p in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").rglob("*.md")]]
    prefixes = {m for t in texts for m in re.findall(r"(?:\[`|::)(test_\w+)(?!\w|\.py)", t)}
    parts = {m for t in texts for m in re.findall(r"\[`\.\.\.(_\w+_)\.\.\.`\]", t)}
    files = {m for t in texts for m in re.findall(r"\b(test_\w+)\.py\b", t)}
    assert prefixes and parts and files, "the citation patterns found nothing: update this test"

    sources = {path.stem: path.read_text(encoding="utf-8") for path in (REPO_ROOT / "tests").rglob("test_*.py")}
    tests, slow = set(), set()
    for stem, text in sources.items():
        module_slow = re.search(r"^pytestmark\s*=.*mark\.slow", text, re.M) is not None
        for match in re.finditer(r"((?:^@pytest\.mark\.[^\n]*\n)*)^def (test_\w+)", text, re.M):
            tests.add(match.group(2))
            if module_slow or "mark.slow" in match.group(1):
                slow.add(match.group(2))
    for stem in sorted(files):
        assert stem in sources, f"docs cite tests/{stem}.py, which does not exist"
        assert not re.search(r"^pytestmark\s*=.*mark\.slow", sources[stem], re.M), f"{stem}.py is all slow"
    for cited, matches in [*((c, [t for t in tests if t.startswith(c.rstrip("_"))]) for c in prefixes),
                           *((c, [t for t in tests if c in t]) for c in parts)]:
        assert matches, f"docs cite {cited!r}, which no test is named after"
        assert not set(matches) & slow, f"docs cite {cited!r} as evidence but {sorted(set(matches) & slow)} is slow"
