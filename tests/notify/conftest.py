"""A real RabbitMQ for the notification tests: a throwaway node we may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.rabbitmq import ThrowawayRabbitMQ, make_tls_files


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRabbitMQ]:
    """One throwaway node (AMQP 0-9-1 and 1.0 on one free port) for the whole session.

    Not the system broker: the outage test stops this node, which must not disturb anyone else.
    It also has a TLS listener that requires client certificates and SASL EXTERNAL, as Fedora's
    broker does; the certificate's CN is a user with full permissions on ``/``.
    """
    if not ThrowawayRabbitMQ.available():
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    tls = make_tls_files(tmp_path_factory.mktemp("rabbit-tls"))
    node = ThrowawayRabbitMQ(tls=tls)
    node.start()
    try:
        node.admit_client_certificate()
        yield node
    finally:
        node.destroy()


@pytest.fixture
def broker(rabbit: ThrowawayRabbitMQ):
    """The node, guaranteed running (a previous test may have stopped it)."""
    return rabbit.start()
