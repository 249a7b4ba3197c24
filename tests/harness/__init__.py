"""Real-service test harness: start registries, nginx, gunicorn, containerd and dockerd on free
loopback ports with all state under one directory, and drive real container clients.

Usable from pytest (``tests.harness.fixtures``) and from plain scripts (``make demo``): every
service is a small class with ``start()``/``stop()`` that is also a context manager.
"""
