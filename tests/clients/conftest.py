"""Real-client tests: the harness's session fixtures (registry, containerd, dockerd, images)."""

from tests.harness.fixtures import *  # noqa: F403
