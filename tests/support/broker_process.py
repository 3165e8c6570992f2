"""A broker run by the tests as a child process, controlled by signals (the DHT broker, Mosquitto).

``stop()`` SIGTERM, ``kill()`` SIGKILL, ``restart()`` (stop then the subclass's ``start``),
``freeze()``/``thaw()`` SIGSTOP/SIGCONT: the port stays open, connections are accepted by the
kernel, nothing answers. A process that ignores SIGTERM for 10 s is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


class BrokerProcess:
    """The process part of a test broker; subclasses set ``_process`` in ``start``."""

    _process: subprocess.Popen[Any] | None = None
    _frozen = False

    def start(self) -> Any:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the broker is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """SIGTERM and wait: clients then get connection refused."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the broker dies without closing anything."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the port stays open, connections are accepted by the kernel, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._frozen = False

    def _end(self, how: signal.Signals) -> None:
        process = self._process
        if process is None:
            return
        if self._frozen:
            self.thaw()
        if process.poll() is None:
            process.send_signal(how)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._process = None
        self._ended()

    def _ended(self) -> None:
        """After the process is gone (a subclass's clean-up)."""
