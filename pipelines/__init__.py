"""Beam graphs and the command line: wiring only, the logic lives in `curation/`."""
