"""A models root whose names and texts are hostile Markdown, in every place a page shows them.

Folder names (scope and model names) cannot hold ``/``, so they carry a relative image; the
texts (reason, actor, description, card text) carry the full set, an absolute image included.
Also a hostile feature name (drifted, so the Monitoring page lists it), hostile class labels,
a hostile ``model_type`` and a broken scope with a hostile name (the warning names it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from factories import make_data, write_model
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

#: Markdown that must show as written: an image, a link, KaTeX, bold, HTML, a colour
#: directive, and what GFM links on its own (a bare domain, an e-mail address).
_CORE = "[link](javascript:alert(1)) $\\KaTeX$ **bold** :red[red]"
TEXT = f"![x](http://127.0.0.1:9/i.png) {_CORE} <b>html</b> www.example.com &amp; eve@example.com"
FOLDER = f"![x](i.png) {_CORE} <b>html www.example.com a@b.co"  # no "/" in a folder name

SCOPE = FOLDER
EMPTY_SCOPE = f"{FOLDER} unexported"
BROKEN_SCOPE = f"{FOLDER} broken"
CHAMPION = f"{FOLDER} champion"  # champion, then rolled back from: the rollback button names it
CANARY = f"{FOLDER} canary"
ACTOR = "**eve** <b>x</b> :red[eve] ![a](http://127.0.0.1:9/a.png) eve@example.com"
REASON = f"because {TEXT}"
DESCRIPTION = f"scope about {TEXT}"
CARD_TEXT = f"weak on {TEXT}"
FEATURE = "![f](i.png) **f2** $x$ :red[f2]"
MODEL_TYPE = "**tree** :red[type]"
CLASSES = [f"**c{i}** <b>{i}</b> :red[{i}]" for i in range(6)]

#: The Markdown of the data, written raw: none of them may reach a Markdown element unescaped.
RAW_TOKENS = ("![x](i.png)", "![x](http://127.0.0.1:9/i.png)", "[link](javascript:alert(1))",
              "$\\KaTeX$", "**bold**", "<b>html", ":red[red]", "**eve**", "<b>x</b>",
              ":red[eve]", "![a](http://127.0.0.1:9/a.png)", "![f](i.png)", "**f2**", "$x$",
              ":red[f2]", "**tree**", ":red[type]", "&amp;", "**c0**", "<b>0</b>", ":red[0]")
#: GFM turns bare domains, URLs and e-mail addresses into links even when every character is
#: escaped; a word joiner (U+2060) in front of them (or after the @) keeps them text.
_AUTOLINK = re.compile(r"(?<!\u2060)(?:www\\?\.|https?\\?:)|[\w.+-]@(?!\u2060)[\w-]")


def markdown_problems(value: str) -> list[str]:
    """The data's Markdown constructs left live in a Markdown ``value``."""
    found = [token for token in RAW_TOKENS if re.search(r"(?<!\\)" + re.escape(token), value)]
    found += [match.group() for match in _AUTOLINK.finditer(value)]
    return found


def _frame(n_rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_data("multiclass", n_rows)
    X = X.rename(columns={"f2": FEATURE})
    return X, np.array(CLASSES, dtype=object)[y]


def build(root: Path) -> None:
    """The hostile scopes under ``root`` (see the module docstring)."""
    X, y = _frame(600)
    for name in (SCOPE, EMPTY_SCOPE):
        folder = root / name
        folder.mkdir(parents=True)
        X.iloc[300:].assign(label=y[300:]).to_csv(folder / "holdout.csv", index=False)
        (folder / "scope.json").write_text(json.dumps({
            "task": "multiclass", "target": "label", "holdout": "holdout.csv",
            "n_bootstrap": 200, "latency_rows": 20, "description": DESCRIPTION}))
        models = {
            "logreg": (LogisticRegression(max_iter=500), "logistic_regression", "linear"),
            "bayes": (GaussianNB(), "naive_bayes", "neural"),
            CHAMPION: (LogisticRegression(max_iter=500, C=0.5), "logistic_regression",
                       "linear"),
            CANARY: (DecisionTreeClassifier(max_depth=4, random_state=0), MODEL_TYPE, "tree"),
        }
        for model, (estimator, model_type, group) in models.items():
            write_model(folder, model, estimator.fit(X.iloc[:300], y[:300]),
                        model_type=model_type, group=group,
                        meta_extra={"description": TEXT})
    broken = root / BROKEN_SCOPE
    broken.mkdir()
    (broken / "scope.json").write_text(json.dumps({"task": "multiclass"}))


def decide(root: Path) -> None:
    """Champion, a champion rolled back from, a canary, card text, weights, logged traffic."""
    from promotion.lifecycle import rollback
    from promotion.monitoring import simulate
    from promotion.scopes import load_scope
    from promotion.store import open_store
    from promotion.usecases import change_stage, deploy, edit_card_text, save_weights

    store = open_store(root)
    try:
        def move(model: str, stage: str) -> None:
            change_stage(root, SCOPE, store, model, stage, actor=ACTOR, reason=REASON,
                         override=True)

        move("logreg", "production")
        move("logreg", "champion")
        move(CHAMPION, "production")
        move(CHAMPION, "champion")  # logreg archived
        rollback(store, load_scope(root, SCOPE), actor=ACTOR, reason=REASON)  # logreg again
        move(CANARY, "production")
        deploy(root, SCOPE, store, "canary", canary=CANARY, canary_share=0.1, actor=ACTOR,
               reason=REASON)
        edit_card_text(store, SCOPE, CANARY, "known_bias", CARD_TEXT, actor=ACTOR)
        save_weights(store, load_scope(root, SCOPE), {"top_5_accuracy": 0.5, "log_loss": 0.5},
                     actor=ACTOR)
    finally:
        store.close()
    simulate(root, SCOPE, 1200, drift=(FEATURE, 1.5), seed=3, days=8)


def build_hostile_root(root: Path) -> Path:
    """Everything above under ``root`` (created); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    build(root)
    decide(root)
    return root
