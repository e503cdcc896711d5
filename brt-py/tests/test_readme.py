"""The Python examples of the READMEs run as written."""

import re

from conftest import ROOT


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_the_readme_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example may write files
    blocks = python_blocks(ROOT / "brt-py" / "README.md") + python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2, "the READMEs should each show Python"
    for block in blocks:
        exec(compile(block, "README example", "exec"), {})
    assert capsys.readouterr().out.strip(), "the examples print their results"
