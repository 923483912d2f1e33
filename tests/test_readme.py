"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command():
    main_job, tests = readme_commands()[:2]
    assert main_job.endswith("bench run") and "torch==2.13.0" in main_job
    assert tests.endswith("python -m pytest --slow")
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()
