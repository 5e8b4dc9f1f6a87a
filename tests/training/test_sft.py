import json

import torch

from curation.config import build
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
    from curation.models import load_model_and_processor

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
