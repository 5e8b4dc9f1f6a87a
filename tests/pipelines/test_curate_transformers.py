"""The curate pipeline with `transformers` teachers: a real tiny Qwen2-VL (random weights, built
here) captions the images and, used text-only, writes the traces. The texts are nonsense; what is
tested is the mechanics: batched RunInference, per-row teacher records, verdicts, accounting."""
import json

import pytest

from curation.store.versions import Store
from curation.recipe import load_data_recipe
from pipelines.curate import run
from tests.training.conftest import TINY


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    import torch

    from curation.synthetic import corpus
    from training.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("teacher") / "tiny", texts=list(corpus(200, seed=0)), **TINY)


def test_transformers_teachers_caption_distill_verify_end_to_end(tmp_path, tiny_teacher):
    teacher = {"backend": "transformers", "model": str(tiny_teacher), "max_new_tokens": 12, "batch_size": 4,
               "temperature": 1.0, "seed": 1}
    cfg = load_data_recipe("configs/data/mini.yaml", [
        f"output_root={tmp_path}", "synthetic.n=12", "test_fraction=0.2",
        f"caption={json.dumps(teacher)}", f"distill={json.dumps(dict(teacher, n=2))}"])
    info = run(cfg)
    store = Store(info.path.parent)
    examples = store.read_table("examples").to_pylist()
    rejects = store.read_table("rejects").to_pylist()
    traces = store.read_table("traces").to_pylist()
    train = [e for e in examples if e["split"] == "train"]
    model_id = f"transformers:{tiny_teacher}"
    assert train, "some rows must come through the model teachers"
    assert all(e["caption"] and e["caption_teacher"] == model_id for e in train)
    assert len(traces) == 2 * len(train)  # n = 2 samples per example, every one kept with its verdict
    assert all(t["teacher"] == model_id and t["verdict_reason"] and t["sampling"] for t in traces)
    assert json.loads(traces[0]["sampling"])["n"] == 2
    assert {t["status"] for t in traces} <= {"selected", "not_shortest", "incorrect", "bad_format",
                                             "too_short", "too_long", "too_many_edits"}
    assert store.read_table("sft").num_rows == sum(t["selected"] for t in traces)
    # a row the random captioner left empty is a reject with a reason, never a silent drop
    assert all(r["stage"] in ("dedup", "caption", "distill") for r in rejects)
    a = info.manifest["accounting"]
    assert a["rows_in"] == 12 == a["rows_written"] + a["rows_rejected"] + a["rows_duplicate"]
    assert info.manifest["teachers"]["caption"]["model"] == model_id
