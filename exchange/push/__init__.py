"""Push delivery: the hub POSTs each package to the agency's system (Standard Webhooks
signatures), retries on a schedule, gives up into a dead letter an operator can redeliver.

``contract`` (secret, URL, signed headers), ``policy`` (answers, schedule, circuit breaker),
``pusher`` (the loop that sends), ``admin`` (the operators' use cases), ``metrics``.
"""

from exchange.push.admin import STATES, PushAdmin
from exchange.push.metrics import PushMetrics
from exchange.push.pusher import Pusher

__all__ = ["STATES", "PushAdmin", "PushMetrics", "Pusher"]
