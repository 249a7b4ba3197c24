"""Tests of the Pulp plugin against a real Pulp (PostgreSQL, API, content app, worker)."""
