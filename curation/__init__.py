"""Pure curation logic (no Beam): sources, image checks, hashing, verification, teachers, store."""
