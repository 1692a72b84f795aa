"""docs/config.md is rendered from the field descriptions in the code, so it cannot drift."""

from pathlib import Path

from mossa.cli.config import CONFIG_KINDS, REGENERATE, render_markdown
from mossa.config import field_docs

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_config_md_is_what_the_code_renders():
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        f"docs/config.md is out of date; regenerate it: {REGENERATE}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def test_rendered_docs_hold_every_key_with_its_type_and_description():
    text = render_markdown()
    for make in CONFIG_KINDS.values():
        for doc in field_docs(make().model):
            assert f"| `{doc.key}` | `{_cell(doc.type)}` |" in text
            assert f"| {_cell(doc.description)} |" in text
