"""Rewrite rules, one module per phase (canonicalize/simplify, stabilize)."""
