"""Command-line pieces every `sightline` command shares: a parser made from the module's docstring, and the
recipe arguments (``--config``, ``--set KEY=VALUE``) that ``curation.loader.load`` reads."""
from __future__ import annotations

import argparse


def doc_parser(prog: str, doc: str, epilog: str | None = "rest", **kw) -> argparse.ArgumentParser:
    """A parser whose description is ``doc``'s first paragraph and, by default, whose epilog is the rest of it
    (layout kept); ``epilog=None`` leaves it out, any other string replaces it."""
    head, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=head, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=rest if epilog == "rest" else epilog, **kw)


def add_recipe_arguments(p: argparse.ArgumentParser, default: str | None, what: str, example: str,
                         metavar: str = "KEY=VALUE") -> None:
    """``--config`` (the YAML recipe, ``default`` when not given) and repeatable ``--set`` overrides."""
    shown = f"default {default}" if default else "none by default"
    p.add_argument("--config", default=default, help=f"{what} recipe, YAML ({shown})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar=metavar,
                   help=f"override one {what} recipe value (repeatable), e.g. --set {example}")
