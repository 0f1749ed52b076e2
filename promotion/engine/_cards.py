"""Which export a scope serves, and reading its model-cards file with one clear message for bad
content. Only pydantic and the contract: the pages and the command line read cards without
loading the engine."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from ..contract import EXPORT_AREA, MODEL_CARDS, ModelCard, ModelCards, cards_files
from ..errors import InvalidInputError


def newest_cards_file(scope: str, models_dir: Path | str) -> Path:
    """The model-cards file of ``scope``'s newest decisions (see ``contract.export_order``):
    not the newest file name, which an export finishing late or a far-future name would
    win."""
    found = cards_files(Path(models_dir), scope)
    if not found:
        folder = Path(models_dir) / EXPORT_AREA / MODEL_CARDS
        raise InvalidInputError(f"no model cards exported for scope '{scope}' in {folder}. "
                                f"Hint: python -m promotion export --scope {scope}")
    return found[-1]


def read_cards(path: Path) -> list[ModelCard]:
    """Read and validate a model-cards file; bad content raises one clear message."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}: not valid JSON (line {err.lineno}, column "
                                f"{err.colno}: {err.msg})") from None
    try:
        return ModelCards.model_validate(data).root
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = list(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if len(loc) > 1:
            message = f"card {loc[0]} field '{'.'.join(map(str, loc[1:]))}': {message}"
        raise InvalidInputError(f"{path}: {message}") from None
