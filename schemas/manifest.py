"""The manifest of a version: what it contains, where it came from, and that its counts add up."""
from __future__ import annotations

from typing import Any

# field -> (type(s), required)
MANIFEST_FIELDS: dict[str, tuple[Any, bool]] = {
    "name": (str, True),
    "version": (int, True),
    "parent": ((int, type(None)), True),
    "created_at": (str, True),
    "git_commit": ((str, type(None)), True),
    "schema_version": (int, True),
    "config": (dict, True),
    "teachers": (dict, True),        # role -> {backend, model, prompt_version, sampling}
    "stage_counts": (dict, True),    # stage -> {"in": n, "out": n, "rejected": n, "duplicates": n, "seconds": s}
    "accounting": (dict, True),      # rows in = rows written + rejected + duplicates, stated and checked
    "tables": (dict, True),          # table -> rows
    "files": (dict, True),           # table -> [{path, rows, sha256, bytes}]
    "card": (dict, False),           # the dataset card README.md: {path, sha256, bytes} (versions since issue 17)
}


def validate_manifest(m: dict) -> list[str]:
    """Problems with a manifest (empty list when it is valid)."""
    problems = []
    if not isinstance(m, dict):
        return ["manifest is not a JSON object"]
    for key, (typ, required) in MANIFEST_FIELDS.items():
        if key not in m:
            if required:
                problems.append(f"missing field {key!r}")
            continue
        if not isinstance(m[key], typ) or (typ is int and isinstance(m[key], bool)):
            problems.append(f"field {key!r} has type {type(m[key]).__name__}")
    for stage, c in (m.get("stage_counts") or {}).items():
        if not isinstance(c, dict):
            continue
        if all(k in c for k in ("in", "out", "rejected")):
            lost = c["in"] - c["out"] - c["rejected"] - c.get("duplicates", 0)
            if lost:
                problems.append(f"stage {stage!r}: {c['in']} in != {c['out']} out + {c['rejected']} rejected"
                                f" + {c.get('duplicates', 0)} duplicates")
    acc = m.get("accounting") or {}
    if all(k in acc for k in ("rows_in", "rows_written", "rows_rejected", "rows_duplicate")):
        if acc["rows_in"] != acc["rows_written"] + acc["rows_rejected"] + acc["rows_duplicate"]:
            problems.append(f"accounting: {acc['rows_in']} rows in != {acc['rows_written']} written + "
                            f"{acc['rows_rejected']} rejected + {acc['rows_duplicate']} duplicates")
    return problems
