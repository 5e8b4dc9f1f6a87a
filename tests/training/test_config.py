import pytest

from curation.errors import SightlineError
from pipelines.train_cmd import curated_version, sft_recipe
from training.config import load_config, to_dataclass
from training.sft import SFTRecipe


def _write(tmp_path, text):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_sections_overrides_and_typed_values(tmp_path):
    p = _write(tmp_path, "run:\n  name: t\n  data: data/x\nsft:\n  learning_rate: 1e-3\n  max_steps: 10\n")
    cfg = load_config(p, ["sft.batch_size=4", "sft.learning_rate=3e-4", "sft.trainer={optim: sgd}"])
    recipe = sft_recipe(cfg)
    assert isinstance(recipe, SFTRecipe)
    assert recipe.learning_rate == 3e-4 and isinstance(recipe.learning_rate, float)  # YAML 1.1 reads 3e-4 as a str
    assert (recipe.batch_size, recipe.max_steps, recipe.trainer) == (4, 10, {"optim": "sgd"})
    # run-level defaults flow into the stage: data, output folder, seed
    assert recipe.data == "data/x" and recipe.output_dir == "runs/t/sft" and recipe.model == "models/tiny"


@pytest.mark.parametrize("text,overrides,message", [
    ("sft:\n  lerning_rate: 0.1\n", [], "unknown config key sft.lerning_rate; known in sft: .*learning_rate"),
    ("", ["sft.lerning_rate=0.1"], "unknown config key sft.lerning_rate"),
    ("trainer:\n  x: 1\n", [], "unknown config section 'trainer'"),
    ("", ["tiny_model.hidden=3"], "unknown config key tiny_model.hidden"),
    ("", ["sft.max_steps=many"], "sft.max_steps: expected an integer"),
    ("", ["sft.bf16=1"], "sft.bf16: expected true or false"),
    ("", ["learning_rate=1"], "section.key=value"),
    ("", ["run.stages=[grpo]"], "run.stages must include sft"),
    ("sft: [1, 2]\n", [], "must be a mapping"),
])
def test_bad_recipes_fail_with_one_clear_line(tmp_path, text, overrides, message):
    with pytest.raises(SightlineError, match=message):
        load_config(_write(tmp_path, text), overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(SightlineError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_recipes_load(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "train"
    for name in ("mini.yaml", "qwen2_5_vl_3b.yaml", "qwen2_5_vl_7b.yaml"):
        cfg = load_config(root / name)
        assert sft_recipe(cfg).max_length


def test_to_dataclass_keeps_none_for_optional_fields():
    r = to_dataclass(SFTRecipe, {"limit": None, "max_length": "512"}, "sft")
    assert r.limit is None and r.max_length == 512


def test_curated_version_steps_back_over_difficulty_versions(tmp_path):
    from curation.store import Store

    store = Store(tmp_path / "d")
    store.write_version({}, config={"name": "curated"})
    store.write_version({}, parent=1, config={"stage": "difficulty"})
    assert curated_version(store, "latest") == 1 and curated_version(store, 2) == 1
