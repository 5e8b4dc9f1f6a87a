import pytest

from curation.errors import SightlineError
from curation.recipe import load_data_recipe


def test_recipe_overrides_and_typos():
    r = load_data_recipe("configs/data/mini.yaml", ["synthetic.n=12", "distill.n=3", "dedup.threshold=4"])
    assert (r.synthetic.n, r.distill.n, r.dedup.threshold) == (12, 3, 4)
    assert r.distill.role == "distill" and r.caption.backend == "program" and r.caption.role == "caption"
    with pytest.raises(SightlineError, match="unknown config key synthetic.count"):
        load_data_recipe("configs/data/mini.yaml", ["synthetic.count=3"])
    with pytest.raises(SightlineError, match="does not exist"):
        load_data_recipe("configs/data/nope.yaml", [])
    with pytest.raises(SightlineError, match="no input"):
        load_data_recipe("configs/data/mini.yaml", ["synthetic.n=0"])
    with pytest.raises(SightlineError, match="key=value"):
        load_data_recipe("configs/data/mini.yaml", ["synthetic.n"])
    with pytest.raises(SightlineError, match="synthetic.n: expected an integer"):
        load_data_recipe("configs/data/mini.yaml", ["synthetic.n=many"])
    with pytest.raises(SightlineError, match="dedup.scope must be one of"):
        load_data_recipe("configs/data/mini.yaml", ["dedup.scope=pixels"])
    with pytest.raises(SightlineError, match="backend must be one of"):
        load_data_recipe("configs/data/mini.yaml", ["caption.backend=openai"])


def test_teachers_can_be_switched_off():
    r = load_data_recipe("configs/data/mini.yaml", ["caption.backend=none", "distill.backend=none"])
    assert r.caption.model_id == "none" and r.distill.model_id == "none"


def test_gpu_data_recipe_names_a_real_judge(tmp_path):
    """configs/data/geometry3k_vllm.yaml loads (its local dataset paths swapped for a file made here) with a
    vLLM judge: a local instruction model under the same models/ root as its teachers."""
    from pathlib import Path

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "How long is AB?", "answer": "5", "image": "a.png"}\n')
    r = load_data_recipe("configs/data/geometry3k_vllm.yaml",
                         [f"sources=[{{type: jsonl, name: g, path: '{rows}'}}]", "decontam.eval_sets=[]"])
    assert (r.judge.backend, r.judge.temperature, r.judge.enabled) == ("vllm", 0.0, True)
    assert Path(r.judge.model).parent == Path(r.caption.model).parent and "Instruct" in r.judge.model
