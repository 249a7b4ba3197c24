"""Metadata: parse native v5 and Pulp 2 v2-v4 files, index them, reload them incrementally."""
