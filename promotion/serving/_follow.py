"""The engine a server answers with, following the scope's exports.

A watcher thread looks at the exports folder every ``POLL_S``; when the export of the newest
decisions is another file, it loads that export completely (every member verified and loaded)
and only then swaps one reference. A request takes the reference once, so it is answered
entirely by the old set or entirely by the new one, never by a mix; the old engine is dropped
when the last request holding it ends. A newer export that cannot be loaded (a file refused,
a member missing) leaves the current one serving and is reported by ``/health``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..contract import EXPORT_AREA, MODEL_CARDS
from ..engine._cards import newest_cards_file
from ..engine._engine import PredictionEngine
from ..engine._predlog import PredictionLog
from ..errors import PromotionError

#: How often the exports folder is looked at, in seconds: a new export is served within about
#: this plus its load time.
POLL_S = 0.1
FULL_EVERY = 5


class FollowedEngine:
    """``current`` is always a fully loaded engine of the newest export seen."""

    def __init__(self, scope: str, models_dir: Path, log: PredictionLog | None, *,
                 poll_s: float = POLL_S) -> None:
        self.scope = scope
        self.models_dir = Path(models_dir)
        self.log = log
        self.poll_s = poll_s
        self.problem: str | None = None  # why the newest export is not the one served
        self.swaps = 0
        self._folder = self.models_dir / EXPORT_AREA / MODEL_CARDS
        self._seen = self._folder_mark()
        self.current = self._load(newest_cards_file(scope, self.models_dir))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"follow-{scope}", daemon=True)

    def start(self) -> FollowedEngine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self, *, full: bool = True) -> bool:
        """Serve the export of the newest decisions if it is another file; whether it swapped.

        The folder's modification time moves whenever a file lands in it (exports are renamed
        into place), so without ``full`` an unchanged folder costs one stat. The watcher still
        looks fully every ``FULL_EVERY`` polls: two files landing within one tick of the
        file system's clock leave the same time.
        """
        mark = self._folder_mark()
        if mark == self._seen and not full:
            return False
        self._seen = mark
        try:
            newest = newest_cards_file(self.scope, self.models_dir)
            if newest == self.current.source:
                self.problem = None
                return False
            engine = self._load(newest)
        except PromotionError as err:
            self.problem = f"still serving {self.current.source.name}: {err}"
            return False
        self.current, self.problem = engine, None  # one reference: the swap is atomic
        self.swaps += 1
        return True

    def _watch(self) -> None:
        polls = 0
        while not self._stop.wait(self.poll_s):
            polls += 1
            self.check(full=polls % FULL_EVERY == 0)

    def _load(self, cards_file: Path) -> PredictionEngine:
        loaded = PredictionEngine.load(self.scope, self.models_dir, cards_file=cards_file,
                                       log=False)
        return PredictionEngine(loaded.members, loaded.source, self.log)

    def _folder_mark(self) -> tuple[int, int]:
        try:
            stat = self._folder.stat()
        except OSError:
            return (-1, -1)
        return (stat.st_mtime_ns, stat.st_ino)
