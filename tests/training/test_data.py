import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.store.versions import Store
from training.data import RL_COLUMNS, rl_dataset, sft_dataset
from curation.generation.prompts import FORMAT_INSTRUCTION, user_prompt


def test_sft_dataset_is_trl_conversational_with_lazy_pil_images(synthetic_store):
    ds = sft_dataset(synthetic_store)
    assert len(ds) == 40 and ds.column_names == ["messages", "images"]
    row = ds[0]
    user, assistant = row["messages"]
    assert [p["type"] for p in user["content"]] == ["image", "text"]
    assert user["content"][1]["text"].endswith(FORMAT_INSTRUCTION)
    assert assistant["role"] == "assistant" and assistant["content"][0]["text"].startswith("<think>")
    assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
    assert row["images"][0].size == (112, 112)
    # the Arrow data holds PNG bytes, not pixels: decoding happens on access
    assert ds.features["images"].feature.decode


def test_rl_and_test_datasets_carry_reward_and_sampler_columns(synthetic_store):
    rl = rl_dataset(synthetic_store)
    test = rl_dataset(synthetic_store, table="test", limit=7)
    assert len(rl) == 40 and len(test) == 7
    assert rl.column_names == RL_COLUMNS
    row = test[0]
    assert row["prompt"][0]["role"] == "user" and isinstance(row["images"][0], Image.Image)
    assert row["solution"] and row["answer_type"] in {"integer", "number", "math", "yes_no", "multiple_choice"}
    assert row["pass_rate"] is None  # filled later by the difficulty pipeline
    tasks = set(rl["task"]) | set(rl_dataset(synthetic_store, table="test")["task"])
    assert tasks == {"counting", "chart", "spatial", "arithmetic", "geometry"}
    mc = [r for r in test.to_list() if r["choices"]]
    for r in mc:
        assert "\nA. " in r["prompt"][0]["content"][1]["text"]


def test_empty_table_and_missing_store_are_clear_errors(tmp_path):
    store = Store(tmp_path / "empty")
    store.write_version({}, config={})
    with pytest.raises(SightlineError, match="is empty"):
        sft_dataset(store)
    with pytest.raises(SightlineError, match="no data folder"):
        rl_dataset(tmp_path / "missing")


def test_user_prompt_letters_options_and_asks_for_the_format():
    text = user_prompt("Which bar is the tallest?", ["cat", "dog"])
    assert text == ("Which bar is the tallest?\nA. cat\nB. dog\n"
                    "Think step by step inside <think></think>, then give the final answer inside <answer></answer>.")
    assert user_prompt(" How many? ", None) == "How many?\n" + FORMAT_INSTRUCTION
