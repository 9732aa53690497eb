"""Tests that the Python snippets of README.md run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets():
    """Check that the README still shows code (so the next test checks something)."""
    assert len(_python_blocks()) >= 3


def test_readme_snippets_run_in_order():
    """Check that the README's snippets, run one after another, pass their asserts."""
    namespace = {}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    assert "search" in namespace
