"""`sightline report`: PNG charts of one version, or its HTML datasheet, built from DuckDB queries over its shards.

    sightline report --data data/mini [--version N] [--out DIR]
    sightline report --html --data data/mini [--version N] [--out FILE] [--rows 100] [--max-mb 20]

Charts (written next to the version unless --out is given, since versions are immutable the
default is ``<data>/reports/vNNNN/``): funnel of rows per stage, rejects by reason, trace
length histogram by verdict, pass-rate histogram (when the difficulty pipeline filled it), and
the task-family mix per table. ``--html`` writes one self-contained page instead (``pipelines/browse.py``):
funnel and accounting, rejects with examples, filterable samples with thumbnails, difficulty, trace
lengths, lineage, teachers and config; default ``<data>/reports/vNNNN/datasheet.html``.
"""
from __future__ import annotations

from pathlib import Path

from curation.errors import SightlineError
from curation.store.versions import Store
from pipelines.audit import FUNNEL_STAGES, connect, funnel  # noqa: F401 - re-exported
from pipelines.args import doc_parser
from training.eval_report import save_figure
from pipelines.browse import build


def make_charts(store: Store, version, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(store, version)
    paths: list[Path] = []

    def save(fig, name):
        paths.append(save_figure(fig, out_dir / name, dpi=110))

    f = funnel(con)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh([s for s, _ in f][::-1], [n for _, n in f][::-1], color="#4477aa")
    for i, (_, n) in enumerate(f[::-1]):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    ax.set_xlabel("rows")
    ax.set_title("rows after each stage")
    save(fig, "funnel.png")

    rej = con.execute("SELECT stage || '/' || reason, count(*) n FROM rejects GROUP BY 1 ORDER BY n DESC LIMIT 20").fetchall()
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(rej) + 1)))
    if rej:
        ax.barh([r for r, _ in rej][::-1], [n for _, n in rej][::-1], color="#cc6677")
    else:
        ax.text(0.5, 0.5, "no rejects", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("rejects by stage/reason")
    save(fig, "rejects.png")

    lengths = con.execute("SELECT length_chars, correct FROM traces").fetchall()
    fig, ax = plt.subplots(figsize=(7, 4))
    for verdict, color in ((True, "#228833"), (False, "#ee6677")):
        xs = [n for n, c in lengths if bool(c) == verdict and n is not None]
        if xs:
            ax.hist(xs, bins=30, alpha=0.6, color=color, label=f"{'correct' if verdict else 'wrong'} ({len(xs)})")
    ax.set_xlabel("trace length (characters)")
    ax.set_ylabel("traces")
    ax.set_title("trace lengths by verdict")
    if lengths:
        ax.legend()
    save(fig, "trace_lengths.png")

    rates = [r[0] for r in con.execute("SELECT pass_rate FROM rl WHERE pass_rate IS NOT NULL").fetchall()]
    if rates:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(rates, bins=[i / 10 for i in range(11)], color="#aa3377", edgecolor="white")
        ax.set_xlabel("pass rate of the policy (k rollouts)")
        ax.set_ylabel("rl prompts")
        ax.set_title(f"difficulty: {len(rates)} prompts scored")
        save(fig, "pass_rate.png")

    mix = con.execute("""SELECT task, 'examples' t, count(*) FROM examples GROUP BY 1, 2
                         UNION ALL SELECT task, 'sft', count(*) FROM sft GROUP BY 1, 2
                         UNION ALL SELECT task, 'rl', count(*) FROM rl GROUP BY 1, 2
                         UNION ALL SELECT task, 'test', count(*) FROM test GROUP BY 1, 2""").fetchall()
    tasks = sorted({str(t) for t, _, _ in mix})
    tables = ["examples", "sft", "rl", "test"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(tables)
    for j, table in enumerate(tables):
        counts = {str(t): n for t, tt, n in mix if tt == table}
        ax.bar([i + j * width for i in range(len(tasks))], [counts.get(t, 0) for t in tasks], width, label=table)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks, rotation=20)
    ax.set_ylabel("rows")
    ax.set_title("task-family mix")
    ax.legend()
    save(fig, "task_mix.png")
    con.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    p = doc_parser("sightline report", __doc__, epilog=None)
    p.add_argument("--data", required=True, help="dataset folder, e.g. data/mini")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: <data>/reports/vNNNN); with --html "
                                               "the page's file (default: <data>/reports/vNNNN/datasheet.html)")
    p.add_argument("--html", action="store_true", help="write the self-contained HTML datasheet instead of PNGs")
    p.add_argument("--rows", type=int, default=100, help="--html: sampled rows per table (default %(default)s)")
    p.add_argument("--max-mb", type=float, default=20.0,
                   help="--html: size cap of the page in MB; samples are halved until it fits (default %(default)s)")
    a = p.parse_args(argv)
    store = Store(a.data)
    v = store.resolve(a.version)
    if a.html:
        if a.out is None and store.is_remote:
            raise SightlineError("--out FILE is required with --html for a store on object storage")
        out = Path(a.out) if a.out else Path(store.root) / "reports" / f"v{v:04d}" / "datasheet.html"
        r = build(store, v, out, rows=a.rows, max_mb=a.max_mb)
        print(f"wrote {r['path']}: {r['bytes'] / 1e6:.2f} MB (cap {a.max_mb:g} MB), {r['rows_per_table']} sampled rows "
              f"per table, {r['images']} thumbnails, {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU)")
        return 0
    out = Path(a.out) if a.out else store.root / "reports" / f"v{v:04d}"
    for path in make_charts(store, v, out):
        print(path)
    return 0
