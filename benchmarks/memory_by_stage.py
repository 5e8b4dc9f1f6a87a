"""Where `sightline data` holds memory per row: each fused stage of the in-process runner, at two sizes.

    .venv/bin/python benchmarks/memory_by_stage.py                      # 2,000 and 8,000 rows (~1 min)
    .venv/bin/python benchmarks/memory_by_stage.py --rows 8000 20000 --json runs/mem.json

Each size runs `pipelines.curate.run` (recipe `configs/data/mini.yaml`, `synthetic.n` = rows, program
teachers, one in-process worker) in a fresh Python process, with Beam's FnApiRunner wrapped so that
for every fused stage (the steps Beam runs as one bundle between two shuffles) it records:

- ``rise``: the process's peak RSS while the stage ran (sampled every 10 ms) minus its RSS when the
  stage started: what the stage needs on top of what earlier stages left behind;
- ``kept``: RSS when it ended minus RSS when it started (what it left behind: runner buffers, and
  memory the allocator did not give back);
- ``arrow``: the peak of Arrow's memory pool during the stage over its value at the start (Parquet
  reads and the writers' buffered record batches);
- ``held``: bytes the runner holds between stages after it: PCollections waiting at a shuffle (the
  in-process runner keeps them all in memory, grouped values as Python objects) and side inputs.

Then, per stage, the difference between the two sizes divided by the rows added: the bytes per row
that stage's memory grows by. A stage whose ``rise`` grows with the rows holds something per row.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs/data/mini.yaml"
MB = 2 ** 20


def _deep_size(obj) -> int:
    """Bytes of a decoded shuffled value: bytes / str / numbers, and tuples, lists, dicts of them."""
    if isinstance(obj, (list, tuple)):
        return sys.getsizeof(obj) + sum(_deep_size(x) for x in obj)
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(_deep_size(k) + _deep_size(v) for k, v in obj.items())
    value = getattr(obj, "value", None)  # a WindowedValue
    return sys.getsizeof(obj) + (_deep_size(value) if value is not None else 0)


def _buffer_bytes(buf) -> int:
    from apache_beam.runners.portability.fn_api_runner import execution

    if isinstance(buf, execution.ListBuffer):
        return sum(len(b) for b in buf._inputs)  # encoded elements
    if isinstance(buf, execution.GroupingBuffer):
        table = sum(len(k) + _deep_size(v) for k, v in buf._table.items())
        return table + sum(len(b) for part in (buf._grouped_output or []) for b in part)
    return 0


def _held_bytes(ctx) -> int:
    """What the runner holds between stages: buffers waiting in its queues, and side inputs in its state."""
    seen, total = set(), 0
    buffers = list(ctx.pcoll_buffers.values())
    for queue in (ctx.queues.ready_inputs, ctx.queues.watermark_pending_inputs, ctx.queues.time_pending_inputs):
        for _, data_input in list(queue._q):
            buffers += list(data_input.data.values())
    for buf in buffers:
        if id(buf) not in seen:
            seen.add(id(buf))
            total += _buffer_bytes(buf)
    state = getattr(ctx.worker_handler_manager.state_servicer, "_state", {})
    total += sum(len(b) for values in state.values() for b in values if isinstance(b, bytes))
    return total


def _label(stage, order: dict[str, int]) -> str:
    """A fused stage as the steps of the code that run in it, in graph order: 'Ingest synthetic + Validate + ...'
    (indexes dropped, a table writer's steps as one, error-to-reject plumbing left out)."""
    from pipelines.profile import step_name

    steps = set()
    for t in stage.transforms:
        name = step_name(t.unique_name.split("/")[0]).split(":")[0]
        if name.startswith("ref_") or name.endswith("to rejects") or name.startswith("Write scan rejects"):
            continue
        steps.add(name)
    return " + ".join(sorted(steps, key=lambda s: (order.get(s, 1 << 30), s))) or "(runner plumbing)"


def child(n: int) -> list[dict]:
    """Run the pipeline once with every fused stage measured; returns one record per stage."""
    import contextlib
    import io

    import psutil
    import pyarrow as pa
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    from curation.recipe import load_data_recipe
    from pipelines.curate import run

    proc = psutil.Process()
    peak = {"rss": 0, "arrow": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], proc.memory_info().rss)
            peak["arrow"] = max(peak["arrow"], pa.total_allocated_bytes())
            stop.wait(0.01)

    records: list[dict] = []
    order: dict[str, int] = {}  # top-level step -> its place in the graph (construction order)
    execute, run_pipeline = fn_runner.FnApiRunner._execute_bundle, fn_runner.FnApiRunner.run_pipeline

    def ordered(self, pipeline, options):
        from pipelines.profile import step_name

        order.clear()
        for i, part in enumerate(pipeline.transforms_stack[0].parts):
            order.setdefault(step_name(part.full_label).split(":")[0], i)
        return run_pipeline(self, pipeline, options)

    def measured(self, ctx, manager, bundle_input):
        rss0, arrow0 = proc.memory_info().rss, pa.total_allocated_bytes()
        peak["rss"], peak["arrow"] = rss0, arrow0
        t = time.perf_counter()
        out = execute(self, ctx, manager, bundle_input)
        rss1 = proc.memory_info().rss
        records.append({"stage": _label(manager.stage, order), "seconds": time.perf_counter() - t,
                        "rss_start_mb": rss0 / MB, "rise_mb": (max(peak["rss"], rss1) - rss0) / MB,
                        "kept_mb": (rss1 - rss0) / MB, "arrow_mb": (peak["arrow"] - arrow0) / MB,
                        "held_mb": _held_bytes(ctx) / MB})
        return out

    fn_runner.FnApiRunner._execute_bundle, fn_runner.FnApiRunner.run_pipeline = measured, ordered
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as out:
        recipe = load_data_recipe(str(RECIPE), [f"output_root={out}", f"synthetic.n={n}"])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(recipe, workers=1)
    stop.set()
    thread.join()
    return records


def measure(n: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=os.environ.get("TMPDIR", str(ROOT / ".tmp")))
    r = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, cwd=ROOT,
                       env=env, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{n} rows failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare(small: int, large: int, a: list[dict], b: list[dict]) -> list[str]:
    """Stages of both runs side by side (matched by label and order), with the growth per added row."""
    per_row = 1 / (large - small) * MB
    lines = [f"{'stage (steps fused into one bundle)':58s} {'rise MB':>15s} {'B/row':>6s} {'kept MB':>13s} "
             f"{'B/row':>6s} {'arrow MB':>13s} {'held MB':>13s} {'B/row':>6s}",
             f"{'':58s} {small:>7,d}{large:>8,d} {'':6s} {small:>6,d}{large:>7,d} {'':6s} {small:>6,d}{large:>7,d} "
             f"{small:>6,d}{large:>7,d}"]
    by_label = {}
    for x in a:
        by_label.setdefault(x["stage"], []).append(x)
    for y in b:
        same = by_label.get(y["stage"])
        if not same:
            lines.append(f"  (only at {large:,} rows: {y['stage']})")
            continue
        x = same.pop(0)
        if max(x["rise_mb"], y["rise_mb"], y["held_mb"], abs(y["kept_mb"])) < 0.5:
            continue
        lines.append(
            f"{y['stage'][:58]:58s} {x['rise_mb']:7.1f}{y['rise_mb']:8.1f} {(y['rise_mb'] - x['rise_mb']) * per_row:6,.0f} "
            f"{x['kept_mb']:6.1f}{y['kept_mb']:7.1f} {(y['kept_mb'] - x['kept_mb']) * per_row:6,.0f} "
            f"{x['arrow_mb']:6.1f}{y['arrow_mb']:7.1f} {x['held_mb']:6.1f}{y['held_mb']:7.1f} "
            f"{(y['held_mb'] - x['held_mb']) * per_row:6,.0f}")
    pa_, pb = (max(r["rss_start_mb"] + r["rise_mb"] for r in rs) for rs in (a, b))
    lines.append(f"peak RSS: {pa_:,.0f} MB at {small:,} rows, {pb:,.0f} MB at {large:,} rows: "
                 f"{(pb - pa_) * per_row:,.0f} B per added row")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs=2, default=[2000, 8000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--json", type=Path, default=None, help="also write both runs' stage records here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child)))
        return
    small, large = sorted(a.rows)
    runs = [measure(small), measure(large)]
    print(f"recipe {RECIPE.relative_to(ROOT)} (synthetic.n = rows), in-process runner, {os.cpu_count()} CPUs")
    print("\n".join(compare(small, large, *runs)))
    if a.json:
        a.json.write_text(json.dumps({str(small): runs[0], str(large): runs[1]}, indent=1))


if __name__ == "__main__":
    main()
