"""The export core: plain Python, no Django, shared by the Pulp task and ``fedora-mirror``."""
