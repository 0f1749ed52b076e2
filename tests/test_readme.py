"""The documented settings tables are generated from the settings models: they must not drift."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from promotion.scopes import GateSettings, ScopeConfig
from promotion.settings import settings_table as environment_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def settings_table(model: type[BaseModel] = ScopeConfig) -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = "see below"
        else:
            default = f"`{field.default!r}`"
        lines.append(f"| `{name}` | {default} | {field.description} |")
    return "\n".join(lines)


def test_readme_settings_table_matches_the_model():
    text = (DOCS / "models-root.md").read_text(encoding="utf-8")
    start = text.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == settings_table()


def test_readme_gates_table_matches_the_model():
    text = (DOCS / "lifecycle.md").read_text(encoding="utf-8")
    start = text.index("<!-- gates-table:start -->\n") + len("<!-- gates-table:start -->\n")
    end = text.index("<!-- gates-table:end -->")
    assert text[start:end].strip() == settings_table(GateSettings)


def test_readme_environment_table_matches_the_settings():
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    start = text.index("<!-- env-settings:start -->\n") + len("<!-- env-settings:start -->\n")
    end = text.index("<!-- env-settings:end -->")
    assert text[start:end].strip() == environment_table()
