"""``python -m promotion <command>``: the app's actions for operators and scripts."""

from ._parser import build_parser, main

__all__ = ["build_parser", "main"]
