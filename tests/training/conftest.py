"""Training fixtures: a tiny model and a small store version, both built here from the synthetic source.

The shard rows follow the curate pipeline's layout (schemas.tables): sft rows pair the user turn
(image part + ``user_prompt`` text) with the program teacher's trace; rl/test rows hold the
user turn as ``prompt`` and the gold answer as ``solution``.
"""
from __future__ import annotations

import pytest

TINY = {"vocab_size": 400, "text_hidden": 64, "text_layers": 1, "vision_depth": 1, "vision_hidden": 32, "image_size": 112}


def synthetic_tables(n_train: int, n_test: int, *, seed: int = 0, families=None, level=None,
                     n_val: int = 0) -> dict[str, list[dict]]:
    """examples/sft/rl/test rows for ``n_train + n_test`` synthetic examples (the last n_test held out);
    with ``n_val``, the last ``n_val`` of the held-out rows form a ``val`` table instead."""
    from curation.synthetic import generate, solution_from_scene
    from curation.generation.prompts import assistant_message, user_message

    tables: dict[str, list[dict]] = {"examples": [], "sft": [], "rl": [], "test": []}
    if n_val:
        tables["val"] = []
    for i, ex in enumerate(generate(n_train + n_test + n_val, seed=seed, families=families, level=level)):
        split = "train" if i < n_train else "test" if i < n_train + n_test else "val"
        tables["examples"].append({**ex, "split": split})
        lineage = {"id": ex["id"], "source": ex["source"], "source_id": ex["source_id"]}
        user = user_message(ex["question"], ex["choices"])
        rl = {**lineage, "task": ex["task"], "level": ex["level"], "prompt": [user], "images": ex["images"],
              "solution": ex["answer"], "answer_type": ex["answer_type"], "choices": ex["choices"]}
        if split != "train":
            tables[split].append(rl)
            continue
        tables["rl"].append(rl)
        tables["sft"].append({**lineage, "trace_id": f"{ex['id']}-0", "task": ex["task"], "level": ex["level"],
                              "teacher": "program",
                              "messages": [user, assistant_message(solution_from_scene(ex["scene"]))],
                              "images": ex["images"]})
    return tables


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory):
    """A store with one version: 40 sft/rl rows and 20 test rows over all five families."""
    from curation.store.versions import Store

    store = Store(tmp_path_factory.mktemp("data") / "synth")
    store.write_version(synthetic_tables(40, 20, seed=3), config={"source": "tests/training/conftest.py"})
    return store


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen2-VL (about 0.1M parameters) with a BPE trained on a small synthetic corpus."""
    from curation.synthetic import corpus
    from training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", texts=list(corpus(200, seed=0)), **TINY)


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory, monkeypatch):
    """Keep the datasets Arrow cache inside pytest's temp folder."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf-datasets"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two
    OpenMP threads per process oversubscribe the cores: measured 10x slower steps."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
