"""Which records the code has moved past: the cheap git check, refined by replays.

A run record is *stale* when code its model depends on (:func:`siger.train.record.model_code_paths`)
changed since its commit, unless a replay of its first epochs on later code matched
(``verified``, :mod:`siger.experiments.replay`): then the check counts from that commit; a replay
that differed marks it stale whatever git says.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from siger.train.record import REPO, model_code_paths, path_in


# -- staleness -------------------------------------------------------------------------------
class Staleness:
    """Whether a record's code still is the code of HEAD, judged on the code its model depends
    on (:func:`siger.train.record.model_code_paths`; answers cached per commit and model)."""

    def __init__(self, repo: Path = REPO):
        self.repo = repo
        self._cache: dict[tuple, str | None] = {}
        self._paths: dict[tuple, tuple[str, ...]] = {}

    def paths(self, model: str | None, cold_start: bool = True) -> tuple[str, ...]:
        if (model, cold_start) not in self._paths:
            self._paths[(model, cold_start)] = model_code_paths(model, self.repo, cold_start)
        return self._paths[(model, cold_start)]

    def __call__(self, rec: dict[str, Any]) -> str | None:
        """None (current), 'stale' (code changed since the record's commit) or 'uncommitted'
        (trained with uncommitted code changes)."""
        if rec.get("kind") not in ("run", "mostpop", "content"):
            return None
        model = rec.get("model") if rec.get("kind") == "run" else None
        cold_start = bool(rec.get("modes")) or rec.get("kind") == "content"
        paths = self.paths(model, cold_start)
        if any(path_in(p, paths) for p in rec.get("dirty_code") or []):
            return "uncommitted"
        if rec.get("replay_differs"):
            return "stale"
        # a record whose replay matched counts from the commit it was verified at
        commit = (rec.get("verified") or {}).get("commit") or rec.get("commit")
        if not commit:
            return "uncommitted"
        key = (commit, model, cold_start)
        if key not in self._cache:
            try:
                res = subprocess.run(["git", "-C", str(self.repo), "diff", "--quiet", commit, "HEAD", "--", *paths],
                                     capture_output=True, timeout=30)
                self._cache[key] = None if res.returncode == 0 else "stale"
                if res.returncode not in (0, 1):
                    self._cache[key] = "unknown commit"
            except (OSError, subprocess.SubprocessError):
                self._cache[key] = "unknown commit"
        return self._cache[key]


MARKS = {"stale": "†", "uncommitted": "‡", "unknown commit": "?"}
