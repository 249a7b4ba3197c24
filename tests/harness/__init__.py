"""Plain-Python harnesses that run real services for tests (no pytest dependency)."""
