import json

import pytest

from curation.errors import SightlineError
from curation.generation.models import generate_texts
from training.eval_report import label, probe_table, table
from training.evaluate import (
    EvalConfig,
    blank_images,
    evaluate,
    image_derangement,
    main,
    score,
)

NO_PROBES = EvalConfig(limit=8, batch_size=4, max_new_tokens=12, device="cpu", image_probes=False)


def _rows(solutions, tasks, kinds=None, choices=None):
    n = len(solutions)
    return [{"id": f"r{i}", "task": tasks[i], "solution": solutions[i],
             "answer_type": (kinds or [None] * n)[i], "choices": (choices or [None] * n)[i]}
            for i in range(n)]


def test_score_counts_by_hand():
    responses = ["<think>2+1</think><answer>3</answer>",      # counting: right
                 "<think>..</think><answer>5</answer>",        # counting: wrong
                 "<answer>B</answer>",                         # chart: right, bad format
                 "<think>left</think><answer>no</answer>"]     # spatial: right
    rows = _rows(["3", "4", "B", "no"], ["counting", "counting", "chart", "spatial"],
                 ["integer", "integer", "multiple_choice", "yes_no"], [None, None, ["a", "b"], None])
    s = score(responses, rows)
    assert (s["n"], s["correct"], s["accuracy"], s["format_ok"]) == (4, 3, 0.75, 0.75)
    assert s["per_task"] == {"chart": {"n": 1, "correct": 1, "accuracy": 1.0},
                             "counting": {"n": 2, "correct": 1, "accuracy": 0.5},
                             "spatial": {"n": 1, "correct": 1, "accuracy": 1.0}}
    assert [v["correct"] for v in s["verdicts"]] == [True, False, True, True]


# ---------------------------------------------------------------------------- probes: pure parts


def test_derangement_moves_every_row_within_its_family_and_is_seeded():
    tasks = ["a"] * 5 + ["b"] * 3 + ["c"] + ["d"] + ["e"]
    donor = image_derangement(tasks, seed=0)
    assert sorted(donor) == list(range(len(tasks)))          # a permutation: every image is used once
    assert all(d != i for i, d in enumerate(donor))          # no row keeps its own image
    assert all(tasks[donor[i]] == tasks[i] for i in range(8))  # families of >= 2 rows swap inside
    assert {tasks[donor[i]] for i in (8, 9, 10)} <= {"c", "d", "e"} and all(tasks[donor[i]] != tasks[i]
                                                                            for i in (8, 9, 10))
    assert image_derangement(tasks, seed=0) == donor
    assert any(image_derangement(tasks, seed=s) != donor for s in range(1, 5))
    lone = image_derangement(["a", "a", "b"], seed=1)        # one row alone: borrows from another family
    assert lone[2] in (0, 1) and lone[0] == 1 and lone[1] == 0
    assert image_derangement(["a"]) == [] and image_derangement([]) == []


def test_blank_images_are_white_and_keep_each_size():
    from PIL import Image

    ims = [Image.new("RGB", (112, 80), (10, 200, 30)), Image.new("L", (56, 56), 3)]
    blanks = blank_images(ims)
    assert [b.size for b in blanks] == [(112, 80), (56, 56)]
    assert all(b.mode == "RGB" and b.getextrema() == ((255, 255),) * 3 for b in blanks)


def test_config_refuses_a_table_that_is_not_held_out():
    with pytest.raises(ValueError, match="table must be one of test, val"):
        EvalConfig(table="rl")


# ---------------------------------------------------------------------------- a real tiny model


def test_evaluate_equals_verify_on_the_models_own_greedy_outputs(tiny_model_dir, synthetic_store):
    from curation.generation.models import load_model_and_processor
    from curation.answers.verify import verify
    from training.data import rl_dataset

    model, processor = load_model_and_processor(tiny_model_dir)
    test = rl_dataset(synthetic_store, table="test", limit=8)
    texts = generate_texts(model, processor, test["prompt"], test["images"], max_new_tokens=12, batch_size=3,
                           progress=False)
    rows = test.to_list()
    expected = sum(verify(t, r["solution"], choices=r["choices"], answer_type=r["answer_type"]).correct
                   for t, r in zip(texts, rows))
    result = evaluate(tiny_model_dir, synthetic_store, "latest", NO_PROBES, progress=False)
    assert result["n"] == 8 and result["correct"] == expected and result["accuracy"] == expected / 8
    assert result["probes"] == {} and result["rollouts"] == 8 and result["table"] == "test"
    assert [s["response"] for s in result["samples"]] == texts  # batch size does not change greedy outputs


def test_probes_feed_the_model_blank_and_donor_images(tiny_model_dir, synthetic_store):
    """The real model's probe answers equal its answers to white images and to donors' images built here."""
    from curation.generation.models import load_model_and_processor
    from training.data import rl_dataset

    cfg = EvalConfig(limit=6, batch_size=4, max_new_tokens=10, device="cpu", samples=6, probe_seed=7)
    result = evaluate(tiny_model_dir, synthetic_store, "latest", cfg, progress=False)
    model, processor = load_model_and_processor(tiny_model_dir)
    test = rl_dataset(synthetic_store, table="test", limit=6)
    donors = image_derangement(test["task"], seed=7)
    blank = generate_texts(model, processor, test["prompt"], [blank_images(ims) for ims in test["images"]],
                           max_new_tokens=10, progress=False)
    swapped = generate_texts(model, processor, test["prompt"], [test[d]["images"] for d in donors],
                             max_new_tokens=10, progress=False)
    assert [s["blank_response"] for s in result["samples"]] == blank
    assert [s["swapped_response"] for s in result["samples"]] == swapped
    assert result["rollouts"] == 18 and set(result["probes"]) == {"blank", "swapped"}
    assert result["probes"]["blank"]["n"] == 6
    assert 0.0 <= result["probes"]["swapped"]["donor_same_task"] <= 1.0


# ---------------------------------------------------------------------------- a scripted image reader


def _image_reader(rows, images, seen):
    """A stand-in policy that answers from the image alone: it knows each test image's answer by its pixels
    (what a perfect image reader would do) and says a wrong answer for an image it does not know."""
    by_pixels = {}
    for i, ims in enumerate(images):
        by_pixels[ims[0].convert("RGB").tobytes()] = i
    def generate(model, processor, prompts, images, **kw):
        out = []
        for p, ims in zip(prompts, images):
            seen.append(p)
            i = by_pixels.get(ims[0].convert("RGB").tobytes())
            answer = rows[i]["solution"] if i is not None else "nothing-i-know"
            out.append(f"<think>I see it</think><answer>{answer}</answer>")
        return out

    return generate


def test_probes_drop_accuracy_of_a_model_that_reads_the_image(tiny_model_dir, synthetic_store, monkeypatch):
    """Plumbing with a predictable model (not a trained one): real images 100%, blank images 0%, another
    row's image right exactly when the donor's answer verifies as this row's answer, per family."""
    from curation.answers.verify import verify
    from training.data import rl_dataset

    test = rl_dataset(synthetic_store, table="test")
    rows = test.to_list()
    seen: list = []
    monkeypatch.setattr("curation.generation.models.generate_texts", _image_reader(rows, test["images"], seen))
    cfg = EvalConfig(batch_size=6, device="cpu")
    result = evaluate(tiny_model_dir, synthetic_store, "latest", cfg, progress=False)
    n = len(rows)
    assert (result["n"], result["accuracy"], result["rollouts"]) == (n, 1.0, 3 * n)
    assert len(seen) == 3 * n and seen[:18] == [r["prompt"] for r in rows[:6]] * 3  # real, blank, swapped
    blank = result["probes"]["blank"]
    assert blank["accuracy"] == 0.0 and blank["drop"] == 1.0
    donors = image_derangement([r["task"] for r in rows], seed=0)
    right = [bool(verify(f"<answer>{rows[d]['solution']}</answer>", rows[i]["solution"],
                         choices=rows[i]["choices"], answer_type=rows[i]["answer_type"]).correct)
             for i, d in enumerate(donors)]
    swapped = result["probes"]["swapped"]
    assert swapped["correct"] == sum(right) < n
    for task, t in swapped["per_task"].items():
        idx = [i for i, r in enumerate(rows) if r["task"] == task]
        assert t["correct"] == sum(right[i] for i in idx)
        assert t["drop"] == pytest.approx(1.0 - t["correct"] / len(idx))
    assert swapped["donor_same_task"] == 1.0  # every family has >= 2 of the 20 test rows


# ---------------------------------------------------------------------------- val and test


def test_val_table_is_read_when_present_and_refused_when_absent(tiny_model_dir, synthetic_store, tmp_path):
    from curation.store.versions import Store
    from tests.training.conftest import synthetic_tables

    with pytest.raises(SightlineError, match="has no 'val' rows"):
        evaluate(tiny_model_dir, synthetic_store, "latest", EvalConfig(table="val", device="cpu"),
                 progress=False)
    tables = synthetic_tables(6, 7, seed=11)
    tables["val"], tables["test"] = tables["test"][:4], tables["test"][4:]
    store = Store(tmp_path / "with_val")
    store.write_version(tables, config={"source": "test"})
    cfg = EvalConfig(table="val", device="cpu", max_new_tokens=4, image_probes=False)
    r = evaluate(tiny_model_dir, store, "latest", cfg, progress=False)
    assert (r["n"], r["table"]) == (4, "val")
    assert [s["id"] for s in r["samples"]] == [row["id"] for row in tables["val"]]


# ---------------------------------------------------------------------------- command and reports


def test_eval_command_writes_json_and_chart_for_several_checkpoints(tiny_model_dir, synthetic_store, tmp_path,
                                                                   capsys):
    out = tmp_path / "eval.json"
    rc = main(["--model", str(tiny_model_dir), "--model", str(tiny_model_dir), "--data",
               str(synthetic_store.root), "--limit", "5", "--batch-size", "5", "--max-new-tokens", "4",
               "--device", "cpu", "--out", str(out),
               "--threads", "1"])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert [r["n"] for r in saved["results"]] == [5, 5] and saved["version"] == 1
    assert [r["rollouts"] for r in saved["results"]] == [15, 15]
    probes = saved["results"][0]["probes"]
    assert {p: probes[p]["n"] for p in ("blank", "swapped")} == {"blank": 5, "swapped": 5}
    assert out.with_suffix(".png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "overall" in printed and "tiny" in printed and "majority" in printed and "image probes" in printed


def test_labels_and_tables():
    assert label("runs/mini/sft/final") == "sft" and label("models/tiny") == "tiny"
    r = {"model": "m", "n": 2, "accuracy": 0.5, "format_ok": 1.0,
         "per_task": {"chart": {"n": 2, "correct": 1, "accuracy": 0.5}}}
    lines = table([r], labels=["base"]).splitlines()
    assert lines[0].split() == ["model", "n", "overall", "format", "chart"]
    assert lines[2].split() == ["base", "2", "50.0%", "100.0%", "50.0%"]
    probed = {**r, "probes": {"blank": {"accuracy": 0.0, "per_task": {"chart": {"accuracy": 0.0}}},
                              "swapped": {"accuracy": 0.5, "per_task": {"chart": {"accuracy": 0.5}}}}}
    lines = table([probed, r], labels=["sft", "majority"]).splitlines()
    assert lines[0].split() == ["model", "n", "overall", "format", "blank", "swapped", "chart"]
    assert lines[2].split() == ["sft", "2", "50.0%", "100.0%", "0.0%", "50.0%", "50.0%"]
    assert lines[3].split() == ["majority", "2", "50.0%", "100.0%", "-", "-", "50.0%"]
    probe_lines = probe_table([probed, r], labels=["sft", "majority"]).splitlines()
    assert len(probe_lines) == 3 and probe_lines[2].split() == ["sft", "50/0/50", "50/0/50"]


def test_majority_baseline_counts_the_most_common_train_answer_per_task(synthetic_store):
    from collections import Counter

    from training.evaluate import majority_baseline

    train = synthetic_store.read_table("rl").to_pylist()
    test = synthetic_store.read_table("test").to_pylist()
    guess = {t: Counter(r["solution"] for r in train if r["task"] == t).most_common(1)[0][0]
             for t in {r["task"] for r in train}}
    expected = sum(r["solution"] == guess[r["task"]] for r in test)
    b = majority_baseline(synthetic_store)
    assert b["answers"] == dict(sorted(guess.items()))
    assert (b["n"], b["correct"], b["rollouts"]) == (len(test), expected, 0)
