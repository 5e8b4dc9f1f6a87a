import json

import pytest
import torch

from curation.loader import build
from curation.errors import SightlineError
from training.callbacks import read_jsonl
from training.run_config import ModelConfig
from training.sft import SFTStageConfig, build_trainer, run


def _config(tmp_path, **kw) -> SFTStageConfig:
    """The stage config as a recipe's ``sft`` section builds it (TRL's field names)."""
    base = {"output_dir": str(tmp_path / "sft"), "per_device_train_batch_size": 8, "warmup_steps": 0,
            "lr_scheduler_type": "constant", "logging_steps": 1, "seed": 0}
    return build(SFTStageConfig, {**base, **kw}, "sft")


def _loss(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        loss = model(**batch).loss.item()
    model.train()
    return loss


def test_only_the_assistant_turn_carries_labels(tiny_model_dir, synthetic_store, tmp_path):
    trainer = build_trainer(_config(tmp_path), ModelConfig(path=str(tiny_model_dir)), synthetic_store.root)
    rows = [trainer.train_dataset[i] for i in range(3)]
    batch = trainer.data_collator([dict(r) for r in rows])
    tok = trainer.processing_class.tokenizer
    for i, row in enumerate(rows):
        trace = row["messages"][1]["content"][0]["text"]
        labelled = batch["input_ids"][i][batch["labels"][i] != -100]
        assert tok.decode(labelled) == trace + "<|im_end|>\n"  # the answer, and the stop token
        # nothing of the prompt: no image tokens, no system or user text
        assert not (labelled == trainer.model.config.image_token_id).any()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_sft_lowers_the_loss_on_a_fixed_batch(tiny_model_dir, synthetic_store, tmp_path):
    torch.manual_seed(0)
    cfg = _config(tmp_path, max_steps=12, learning_rate=3e-3, limit=16)
    trainer = build_trainer(cfg, ModelConfig(path=str(tiny_model_dir)), synthetic_store.root)
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(8)])
    before = _loss(trainer.model, batch)
    trainer.train()
    after = _loss(trainer.model, batch)
    assert trainer.state.global_step == 12
    assert after < 0.8 * before, (before, after)


def test_run_saves_a_loadable_model_and_metrics(tiny_model_dir, synthetic_store, tmp_path):
    from curation.generation.models import load_model_and_processor

    result = run(_config(tmp_path, max_steps=3, limit=16), ModelConfig(path=str(tiny_model_dir)), synthetic_store.root)
    out = tmp_path / "sft"
    assert result["steps"] == 3 and result["examples_seen"] == 24 and result["rows"] == 16
    assert not list(out.glob("checkpoint-*"))  # save_strategy "no": only final/
    assert json.loads((out / "sft_result.json").read_text()) == result
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())
    # the collator's truncation (max_length) is not saved into the tokenizer: prompts are never cut later
    assert json.loads((out / "final" / "tokenizer.json").read_text())["truncation"] is None
    model, processor = load_model_and_processor(result["model"])  # the saved folder is a full checkpoint
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration" and len(processor.tokenizer) <= 400


# ---------------------------------------------------------------------------- slices and early stopping


@pytest.fixture(scope="module")
def store_with_val(tmp_path_factory):
    """40 train rows over levels 1-3 (sft rows carry their level), 10 test and 12 val rows."""
    from curation.store.versions import Store
    from tests.training.conftest import synthetic_tables

    store = Store(tmp_path_factory.mktemp("data") / "val")
    tables = synthetic_tables(40, 10, seed=5, n_val=12)
    tables["sft"][0]["teacher"] = "policy:sft@0123456789ab"  # one row distilled by a loop round's policy
    store.write_version(tables, config={"source": "tests/training/test_sft.py"})
    return store, tables


def test_sft_slices_by_level_and_teacher(store_with_val):
    from training.data import sft_dataset

    store, tables = store_with_val
    level_of = {r["id"]: r["level"] for r in tables["sft"]}
    want = [r["id"] for r in tables["sft"] if r["level"] == 1]
    assert 0 < len(want) < len(tables["sft"])  # the fixture spans several levels
    ds = load_ids(sft_dataset(store.root, levels=[1]), store)
    assert ds == want and {level_of[i] for i in ds} == {1}
    assert load_ids(sft_dataset(store.root, levels=[1], limit=2), store) == want[:2]
    assert load_ids(sft_dataset(store.root, teachers=["policy"]), store) == [tables["sft"][0]["id"]]
    assert set(sft_dataset(store.root, levels=[1]).column_names) == {"messages", "images"}  # TRL's layout
    with pytest.raises(SightlineError, match="no sft rows"):
        sft_dataset(store.root, levels=[1], teachers=["nobody"])


def load_ids(ds, store) -> list[str]:
    """The sft ids behind a filtered dataset's rows (each row's messages are unique per id here)."""
    from training.data import load_table

    full = load_table(store, "sft")
    by_messages = {json.dumps(m, sort_keys=True): i for m, i in zip(full["messages"], full["id"])}
    return [by_messages[json.dumps(m, sort_keys=True)] for m in ds["messages"]]


def test_plateau_rule_keeps_the_best_and_counts_misses():
    from training.early_stopping import Plateau

    p = Plateau(patience=2, min_delta=0.01)
    assert p.update(10, 0.30) == (True, False)
    assert p.update(20, 0.305) == (False, False)   # within min_delta: a miss
    assert p.update(30, 0.40) == (True, False)     # a real gain resets the count
    assert p.update(40, 0.39) == (False, False)
    assert p.update(50, 0.10) == (False, True)     # second miss in a row: stop
    assert p.best == {"step": 30, "val_accuracy": 0.40}
    assert Plateau(patience=None).update(1, 0.0) == (True, False) and Plateau(None).update(1, 0.0)[1] is False


def test_early_stopping_stops_at_the_plateau_and_final_is_the_best(tiny_model_dir, store_with_val, tmp_path):
    """lr 0: val accuracy cannot change, so the first check is the best and patience 2 stops at step 6."""
    from training.early_stopping import ValAccuracyStopping

    store, _ = store_with_val
    cfg = _config(tmp_path, max_steps=20, learning_rate=0.0, limit=16, val_every=2, val_limit=6,
                  early_stopping_patience=2, val_max_new_tokens=8)
    result = run(cfg, ModelConfig(path=str(tiny_model_dir)), store.root)
    es = result["early_stopping"]
    assert result["steps"] == 6 and es["stopped_at"] == 6
    assert [p["step"] for p in es["curve"]] == [2, 4, 6] and es["plateau_step"] == 2
    assert len({p["val_accuracy"] for p in es["curve"]}) == 1 and es["val_rows"] == 6
    best = (tmp_path / "sft" / "best" / "model.safetensors").read_bytes()
    assert (tmp_path / "sft" / "final" / "model.safetensors").read_bytes() == best
    # the callback's score is evaluation's: same rows, same greedy decoding, same verifier
    from curation.generation.models import load_model_and_processor
    from training.data import rl_dataset
    from training.evaluate import EvalConfig, evaluate

    val = rl_dataset(store.root, table="val", limit=6)
    model, processor = load_model_and_processor(result["model"])
    cb = ValAccuracyStopping(val, processor, tmp_path / "unused", every=1, patience=None, max_new_tokens=8)
    again = evaluate(result["model"], store, cfg=EvalConfig(table="val", limit=6, max_new_tokens=8,
                                                             image_probes=False), progress=False)
    assert cb.accuracy(model) == again["accuracy"] == es["best_val_accuracy"]


def test_early_stopping_needs_val_checks(tmp_path):
    with pytest.raises(SightlineError, match="needs val_every"):
        _config(tmp_path, early_stopping_patience=3)
