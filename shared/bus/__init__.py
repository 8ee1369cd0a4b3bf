"""The RabbitMQ bus: topology, confirmed publishing, consuming with parking."""

from shared.bus.connection import Bus, BusUnavailable
from shared.bus.consumer import Handler, MessageConsumer, PermanentError
from shared.bus.topology import SUBSCRIPTIONS, dead_letter_queue_name

__all__ = ["SUBSCRIPTIONS", "Bus", "BusUnavailable", "Handler", "MessageConsumer", "PermanentError", "dead_letter_queue_name"]
