"""The README's example code and set-up commands stay true."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def marked_block(marker):
    text = README.read_text()
    match = re.search(re.escape(marker) + r"[^\n]*\n```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"README.md has no code block after {marker}"
    return match.group(1)


def test_readme_example_runs(capsys):
    exec(compile(marked_block("<!-- readme-example"), "README.md", "exec"), {})
    assert "-ELBO" in capsys.readouterr().out


def test_readme_commands_name_existing_files():
    demo = marked_block("<!-- demo-command -->")
    script = re.search(r"python (\S+\.py)", demo).group(1)
    assert (README.parent / script).is_file(), script
    assert "pytest" in marked_block("<!-- test-command -->")
