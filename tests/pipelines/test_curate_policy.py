"""The curate pipeline with the policy as the reasoning teacher (`distill: {backend: policy}`): a tiny VLM
policy, taught here to answer in the format, reads each train image with the student prompt (no caption)
and its traces run through the pipeline's own distill -> verify -> select stages."""
import json

import pytest

from curation.store.versions import Store


@pytest.fixture(scope="module")
def curated(tmp_path_factory, taught_policy_dir):
    from curation.recipe import load_data_recipe
    from pipelines.curate import run

    root = tmp_path_factory.mktemp("curate-policy")
    model = taught_policy_dir
    policy = {"backend": "policy", "model": str(model), "n": 3, "max_new_tokens": 24, "batch_size": 4,
              "temperature": 1.0, "top_p": 1.0, "seed": 1}
    recipe = load_data_recipe("configs/data/mini.yaml", [
        f"output_root={root / 'data'}", "synthetic.n=10", "synthetic.families=[counting]", "test_fraction=0.2",
        "val_fraction=0", "caption.backend=none", f"distill={json.dumps(policy)}"])
    return run(recipe), model


def test_the_policy_reads_the_image_and_its_verified_traces_are_selected(curated):
    from curation.generation.prompts import user_message
    from curation.generation.teachers import checkpoint_hash
    from curation.answers.verify import format_ok, verify

    info, model = curated
    store = Store(info.path.parent)
    examples = {e["id"]: e for e in store.read_table("examples").to_pylist()}
    train = [e for e in examples.values() if e["split"] == "train"]
    traces = store.read_table("traces").to_pylist()
    teacher = f"policy:{model.name}@{checkpoint_hash(model)[:12]}"
    assert train and sorted((t["id"], t["sample_index"]) for t in traces) == sorted(
        (e["id"], i) for e in train for i in range(3))  # every train row, read without a caption
    for t in traces:
        ex = examples[t["id"]]
        assert (t["teacher"], t["prompt_version"], t["caption"], t["caption_teacher"]) == (teacher, "v1", None, None)
        assert t["trace"] == t["raw_trace"] and t["rewrite_edits"] == 0  # nothing to rewrite: it saw the image
        assert t["correct"] == verify(t["trace"], ex["answer"], choices=ex["choices"],
                                      answer_type=ex["answer_type"]).correct
        assert t["format_ok"] == format_ok(t["trace"])
        assert t["level"] == ex["level"]
    assert any(t["format_ok"] for t in traces)  # the taught policy writes the format: select has work to do
    selected = {t["trace_id"]: t for t in traces if t["selected"]}
    assert selected and not all(t["correct"] for t in traces)  # some kept, some refused by the verifier
    for tid, t in selected.items():
        assert t["correct"] and t["format_ok"] and t["length_chars"] >= 20
        others = [o for o in traces if o["id"] == t["id"] and o["status"] == "not_shortest"]
        assert all(o["length_chars"] >= t["length_chars"] for o in others)  # shortest first
    assert len({t["id"] for t in selected.values()}) == len(selected)  # max_per_example 1
    sft = store.read_table("sft").to_pylist()
    assert sorted(s["trace_id"] for s in sft) == sorted(selected)
    for s in sft:
        ex = examples[s["id"]]
        assert s["messages"][0] == user_message(ex["question"], ex["choices"])  # the turn the policy answered
        assert s["messages"][1]["content"][0]["text"] == selected[s["trace_id"]]["trace"]
        assert s["images"] == ex["images"] and s["teacher"] == teacher


def test_the_manifest_records_the_policy_and_the_books_balance(curated):
    info, model = curated
    m = info.manifest
    from curation.generation.teachers import checkpoint_hash

    assert m["teachers"]["distill"] | {"sampling": None} == {
        "backend": "policy", "model": f"policy:round1@{checkpoint_hash(model)[:12]}", "prompt_version": "v1",
        "path": str(model), "content_hash": checkpoint_hash(model), "sampling": None}
    assert m["teachers"]["distill"]["sampling"]["n"] == 3
    c = m["stage_counts"]
    assert c["caption"]["in"] == 0 and c["caption"]["skipped"] == c["distill"]["in"] > 0
    assert c["distill"]["in"] == c["distill"]["out"] + c["distill"]["rejected"]
    assert c["verify"]["traces"] == 3 * c["distill"]["out"]
    a = m["accounting"]
    assert a["balanced"] and a["rows_in"] == 10


def test_policy_is_a_reasoning_backend_only():
    from curation.errors import SightlineError
    from curation.recipe import load_data_recipe

    with pytest.raises(SightlineError, match="caption teacher: backend 'policy' is a reasoning teacher"):
        load_data_recipe("configs/data/mini.yaml", ["caption.backend=policy", "caption.model=x"])
    with pytest.raises(SightlineError, match="needs `model:`"):
        load_data_recipe("configs/data/mini.yaml", ["distill.backend=policy"])
