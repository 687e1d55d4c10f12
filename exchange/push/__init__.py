"""Push delivery: the hub POSTs each package to the agency's system (Standard Webhooks
signatures), retries on a schedule, gives up into a dead letter an operator can redeliver."""

from exchange.push.admin import STATES, PushAdmin, push_json
from exchange.push.contract import check_url, new_secret, signature
from exchange.push.metrics import PushMetrics
from exchange.push.pusher import Pusher

__all__ = [
    "STATES",
    "PushAdmin",
    "PushMetrics",
    "Pusher",
    "check_url",
    "new_secret",
    "push_json",
    "signature",
]
