"""`sightline loop` end to end on a tiny store: two rounds, real SFT / rollouts / GRPO / eval with a tiny
Qwen2-VL, the lineage between the rounds' versions, and a re-run that redoes nothing."""
import json

import pytest

from pipelines.cli import main as sightline
from tests.training.conftest import _datasets_cache, _one_torch_thread, synthetic_tables  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    """Spatial yes/no questions (an SFT of a few dozen steps answers half of them right: the policy passes find
    verified answers) over levels 1-2; round 1's cold start sees level-1 traces only."""
    from curation.store.versions import Store

    tmp = tmp_path_factory.mktemp("loop")
    tables = synthetic_tables(48, 8, seed=2, families=["spatial"], level=(1, 2), n_val=6)
    store = Store(tmp / "data")
    store.write_version(tables, config={"source": "tests/pipelines/test_loop.py"})
    train = tmp / "train.yaml"
    train.write_text(f"""
run: {{name: t, data: {store.root}, threads: 1}}
model: {{path: {tmp / 'tiny'}}}
tiny_model: {{vocab_size: 400, text_hidden: 64, text_layers: 1, vision_depth: 1, vision_hidden: 32}}
sft: {{max_steps: 80, per_device_train_batch_size: 8, learning_rate: 3.0e-3, logging_steps: 5, warmup_steps: 0,
      levels: [1], val_every: 40, val_limit: 6, val_max_new_tokens: 64, early_stopping_patience: 5, max_minutes: 3}}
grpo: {{limit: 8, max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 64,
        max_minutes: 2}}
difficulty: {{k: 2, limit: 8, max_new_tokens: 64, batch_size: 8, temperature: 0.3}}
eval: {{batch_size: 8, max_new_tokens: 64}}
""")
    loop = tmp / "loop.yaml"
    loop.write_text(f"""
name: t
train_config: {train}
rounds: 2
round_overrides: [[], ["sft.levels=null", "sft.max_steps=4", "sft.val_every=2", "sft.learning_rate=1e-4"]]
next_prompts: {{limit: 16, k: 4}}
eval_limit: 8
out_dir: {tmp / 'runs'}
""")
    assert sightline(["loop", "--config", str(loop)]) == 0
    return store, tables, loop, tmp / "runs"


def test_two_rounds_with_lineage(loop_run):
    store, tables, _, out = loop_run
    result = json.loads((out / "loop.json").read_text())
    one, two = result["rounds"]
    # round 1: the cold start read level-1 traces only, kept its best val checkpoint, and was scored on test
    level1 = sum(r["level"] == 1 for r in tables["sft"])
    assert one["sft"]["rows"] == level1 < len(tables["sft"]) and one["sft"]["levels"] == [1]
    assert one["sft"]["early_stopping"]["curve"] and one["sft"]["early_stopping"]["plateau_step"] > 0
    for r in (one, two):
        assert set(r["eval"]) == {"sft", "grpo"}
        for e in r["eval"].values():
            assert e["n"] == 8 and set(e["probes"]) == {"blank", "swapped"} and set(e["per_level"]) <= {"1", "2"}
    # the versions chain: curated v1 -> difficulty (round 1) -> distill by round 1's GRPO policy -> difficulty (round 2)
    v_diff1, v_next, v_diff2 = one["difficulty"], one["distill"], two["difficulty"]
    assert one["version"] == 1 and two["version"] == v_next
    assert [store.manifest(v)["parent"] for v in (v_diff1, v_next, v_diff2)] == [1, v_diff1, v_next]
    assert store.manifest(v_next)["config"]["round"] == 2 and store.manifest(v_diff1)["config"]["round"] == 1
    # round 2's SFT read exactly the rows round 1's GRPO policy wrote, starting from that policy
    teacher = one["next_teacher"]
    assert teacher.startswith("policy:") and teacher == store.manifest(v_next)["teachers"]["policy"]["teacher"]
    written = [r for r in store.read_table("sft", v_next).to_pylist() if r["teacher"] == teacher]
    assert written and two["sft"]["rows"] == len(written) and two["sft"]["teachers"] == [teacher]
    assert two["sft"]["base_model"] == one["grpo"]["model"]
    rl_ids = {r["id"] for r in tables["rl"]}
    assert {r["id"] for r in written} <= rl_ids  # policy traces answer rl prompts, never val/test ones
    md = (out / "loop.md").read_text()
    rows = [line.split(" | ")[:2] for line in md.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert rows == [["| 1", "sft"], ["| 1", "grpo"], ["| 2", "sft"], ["| 2", "grpo"]]


def test_a_rerun_redoes_nothing(loop_run, capsys):
    _, _, loop, out = loop_run
    before = (out / "loop.json").read_text()
    capsys.readouterr()
    assert sightline(["loop", "--config", str(loop)]) == 0
    said = capsys.readouterr().out
    assert said.count("done before, not re-run") == 9  # round 1: 5 steps, round 2: 4 (no distill after the last)
    assert json.loads((out / "loop.json").read_text()) == json.loads(before)
