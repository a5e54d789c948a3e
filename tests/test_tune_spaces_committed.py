"""Every committed study space parses against its model (a typo in a key or range fails here, not
hours into a study)."""

from pathlib import Path

import pytest

from siger.experiments.tune.space import load_space
from siger.models import available_models

SPACES = sorted((Path(__file__).resolve().parents[1] / "results" / "studies" / "spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in SPACES if not p.stem.endswith("_enqueue")], ids=lambda p: p.name)
def test_committed_space_parses(path):
    model = {name.lower(): name for name in available_models()}[path.stem.split("_")[0]]
    space = load_space(path, model)
    assert space.params
