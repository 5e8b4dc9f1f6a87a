"""The `sightline` command: one entry point, subcommands loaded lazily (no heavy import for --help)."""
from __future__ import annotations

import importlib
import os
import sys
from curation.errors import SightlineError

# subcommand -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("pipelines.data_cmd", "build a new dataset version (Beam curate pipeline); `data verify` checks one, `data export` copies one as a Hub folder"),
    "audit": ("pipelines.audit", "DuckDB queries over a version: summary, rejects, difficulty, lengths, lineage, SQL"),
    "report": ("pipelines.report", "PNG charts of a version, or --html: a self-contained datasheet page (samples, rejects, lineage)"),
    "difficulty": ("pipelines.difficulty", "score rl prompts by a policy's pass rate over k rollouts -> new version"),
    "train": ("pipelines.train_cmd", "tiny-model | sft | grpo | all: train on a dataset version"),
    "eval": ("training.evaluate", "held-out accuracy: overall, per family, with blank / swapped images"),
    "experiment": ("pipelines.experiment", "base, SFT, SFT+GRPO per sampler, SFT continued, round 2, over seeds"),
    "loop": ("pipelines.loop", "rounds: SFT to its plateau -> policy pass -> GRPO -> eval -> the policy re-distils"),
}


def usage() -> str:
    w = max(map(len, COMMANDS))
    lines = [f"  {k.ljust(w)}  {v[1]}" for k, v in COMMANDS.items()]
    return ("usage: sightline <command> [options]   (sightline <command> --help for each)\n\n"
            "commands:\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"sightline: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    import logging

    # Beam's import logs a harmless warning about optional GCP clients; keep the terminal readable.
    logging.getLogger().addFilter(lambda r: "apitools not found" not in r.getMessage())
    try:
        module = importlib.import_module(COMMANDS[cmd][0])
        return int(module.main(rest) or 0)
    except SightlineError as e:
        print(f"sightline {cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sightline {cmd}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
