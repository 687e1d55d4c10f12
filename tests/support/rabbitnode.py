"""A private RabbitMQ node for tests that restart a broker (never the shared one): its own node
name, ports, database and logs under a temporary folder, with the federation and management
plugins, stopped and started by name."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

# The scripts themselves: the /usr/sbin wrappers switch to the rabbitmq user, who cannot
# write the test's temporary folder.
_BIN = Path("/usr/lib/rabbitmq/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RabbitNode:
    """``rabbit`` node ``lt-fed-<random>@localhost`` listening on free ports."""

    def __init__(self, folder: Path) -> None:
        self.name = f"lt-fed-{secrets.token_hex(3)}@localhost"
        self.amqp_port, self.management_port = _free_port(), _free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text(
            "[rabbitmq_federation,rabbitmq_management,rabbitmq_federation_management].\n"
        )
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "loopback_users.guest = true\n"
        )
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(folder / "node.pid"),
        }

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [_BIN / "rabbitmqctl", "-n", self.name, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        subprocess.run(
            [_BIN / "rabbitmq-server", "-detached"], env=self.env, check=True, capture_output=True
        )
        self._ctl("wait", str(self.folder / "node.pid"), "--timeout", "120")
        self._ctl("await_startup", "--timeout", "120")

    def stop(self) -> None:
        self._ctl("stop", str(self.folder / "node.pid"))


@contextlib.contextmanager
def private_rabbit(folder: Path) -> Iterator[RabbitNode]:
    """A running private node, stopped (its data left in ``folder``) afterwards."""
    node = RabbitNode(folder)
    node.start()
    try:
        yield node
    finally:
        with contextlib.suppress(Exception):
            node.stop()
