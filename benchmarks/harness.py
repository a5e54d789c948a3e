"""What every benchmark shares: its argument parser (with ``--record``), printing the measurement
as one JSON line, and appending it to ``results/records.jsonl`` as a benchmark record (rendered
into the docs by ``siger report``)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parser(doc: str | None, record: bool = True, **kw: Any) -> argparse.ArgumentParser:
    """An argument parser showing the module docstring, with ``--record`` unless ``record`` is
    False (a diagnostic that prints and records nothing)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False, **kw)
    if record:
        ap.add_argument("--record", action="store_true", help="append a benchmark record to results/records.jsonl")
    return ap


def report(args: argparse.Namespace, values: dict[str, Any], label: str, setting: str, summary: str) -> None:
    """Print ``values`` as one JSON line; with ``--record`` also store them as a benchmark record
    (``label``: what was measured, ``setting``: how, ``summary``: the line the docs show)."""
    print(json.dumps(values))
    if getattr(args, "record", False):
        from siger.experiments.records import add_record, bench_record

        add_record(bench_record(label, setting, summary, values))
        print(f"recorded: {label}: {summary}")
