"""The README stays true to the code: every config key with its default, and a
Quick start of exactly two commands.

When a key is added or a default changes, regenerate the table between the
``begin config table`` and ``end config table`` markers of README.md with

    python -c "import spacetime._config as c; print(c.markdown_table())"
"""

import re
from pathlib import Path

import pytest

from spacetime import _config

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- begin config table -->"
END = "<!-- end config table -->"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _table_rows(text: str) -> dict[str, str]:
    """``{key: default}`` from the README's config table."""
    assert BEGIN in text and END in text, "README.md lacks the config table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def _schema_defaults() -> dict[str, str]:
    out = {}
    for section, keys in _config.SCHEMA.items():
        for name, key in keys.items():
            full = f"{section}.{name}" if section else name
            out[full] = f"`{_config._toml_value(key.default)}`"
    return out


def test_readme_lists_every_config_key_with_its_default(readme):
    rows = _table_rows(readme)
    expected = _schema_defaults()
    missing = sorted(set(expected) - set(rows))
    assert not missing, f"config keys missing from README.md: {missing}"
    wrong = {k: (rows[k], v) for k, v in expected.items() if rows[k] != v}
    assert not wrong, f"README.md defaults (readme, schema) differ: {wrong}"


def test_readme_lists_no_config_key_the_schema_lacks(readme):
    extra = sorted(set(_table_rows(readme)) - set(_schema_defaults()))
    assert not extra, f"README.md lists keys that do not exist: {extra}"


def test_readme_config_table_is_the_generated_one(readme):
    table = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == _config.markdown_table().strip()


def test_quick_start_is_two_commands_in_one_fenced_block(readme):
    section = _section(readme, "Quick start")
    # the opening fences of the section, then the lines inside the first block
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", section, re.M | re.S)
    commands = [
        [ln for ln in b.splitlines() if ln.strip() and not ln.startswith("#")]
        for b in blocks
    ]
    command_blocks = [c for c in commands if c and c[0].startswith("python3 -m venv")]
    assert len(command_blocks) == 1, "Quick start needs one block of commands"
    lines = command_blocks[0]
    assert len(lines) == 2, f"Quick start has {len(lines)} commands, not two"
    assert lines[0].endswith("spacetime run")
    assert lines[1].endswith("-m pytest")
    assert all(ln.startswith("python3 -m venv .venv && ") for ln in lines)


def test_readme_sections_come_in_the_agreed_order(readme):
    titles = re.findall(r"^## (.+)$", readme, re.M)
    agreed = [
        "Quick start",
        "Using it from Python",
        "Configuration",
        "Run files",
        "Space-time networks",
        "Convergence studies",
        "Sweeps",
        "Large-time studies",
        "Figures and reports",
        "Performance",
        "Development",
    ]
    assert [t for t in titles if t in agreed] == agreed


def test_relative_links_of_readme_and_docs_point_to_existing_files():
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(root)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
