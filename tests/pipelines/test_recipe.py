import pytest

from curation.errors import SightlineError
from pipelines.curate import resolve_config


def test_recipe_overrides_and_typos():
    cfg = resolve_config("configs/data/mini.yaml", ["synthetic.n=12", "distill.n=3", "dedup.threshold=4"])
    assert cfg["synthetic"]["n"] == 12 and cfg["distill"]["n"] == 3 and cfg["dedup"]["threshold"] == 4
    assert cfg["distill_spec"].n == 3 and cfg["caption_spec"].backend == "program"
    with pytest.raises(SightlineError, match="unknown config key 'synthetic.count'"):
        resolve_config("configs/data/mini.yaml", ["synthetic.count=3"])
    with pytest.raises(SightlineError, match="does not exist"):
        resolve_config("configs/data/nope.yaml", [])
    with pytest.raises(SightlineError, match="no input"):
        resolve_config("configs/data/mini.yaml", ["synthetic.n=0"])
    with pytest.raises(SightlineError, match="key=value"):
        resolve_config("configs/data/mini.yaml", ["synthetic.n"])
