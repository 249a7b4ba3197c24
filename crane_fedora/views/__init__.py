"""Flask blueprints: the registry API (when the fast path is off) and the small admin routes."""
