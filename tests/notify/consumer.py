"""A real pika consumer bound to ``amq.topic``, as a fedora-messaging consumer would be."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pika


@dataclass
class Received:
    routing_key: str
    exchange: str
    properties: Any
    body: bytes
    #: ``time.time()`` when the consumer got it (at most one 50 ms poll after the broker had it).
    received_at: float = 0.0


class TopicConsumer:
    """Declares a queue bound to ``amq.topic`` with ``binding_key`` and collects what arrives."""

    def __init__(self, amqp_url: str, binding_key: str, queue: str = "", durable: bool = False) -> None:
        self.url = amqp_url
        self.binding_key = binding_key
        self.durable = durable
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        ch = self.conn.channel()
        res = ch.queue_declare(queue=queue, exclusive=not durable, durable=durable, auto_delete=False)
        self.queue = res.method.queue
        ch.queue_bind(queue=self.queue, exchange="amq.topic", routing_key=binding_key)
        self.channel = ch

    def reconnect(self) -> None:
        """After a broker restart (only meaningful for a durable queue)."""
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.conn.channel()

    def drain(self, expect: int = 1, timeout: float = 5.0, settle: float = 0.5) -> list[Received]:
        """Get messages until ``expect`` arrived and ``settle`` more seconds brought nothing new."""
        got: list[Received] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            method, props, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is not None:
                got.append(Received(method.routing_key, method.exchange, props, body, time.time()))
                quiet_until = None
                continue
            if len(got) >= expect:
                quiet_until = quiet_until or time.monotonic() + settle
                if time.monotonic() >= quiet_until:
                    break
            time.sleep(0.05)
        return got

    def close(self) -> None:
        if self.durable and self.conn.is_open:
            self.channel.queue_delete(self.queue)
        if self.conn.is_open:
            self.conn.close()
