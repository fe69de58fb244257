"""The Ray cluster's GCS, watched from the pool's `restyle-ray` thread.

Ray cannot work without its GCS, and a driver whose GCS is gone hangs in Ray calls and then ends
the process after Ray's own reconnect timeout with lines of its own. The watch speaks first: after
half that timeout it writes one line naming Ray and exits with the bot's runtime failure code, so
systemd or Docker start the bot again; the database requeues running jobs and posts finished ones.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

CHECK_S = 2.0  # how often the GCS is looked for
PROBE_S = 5.0  # to connect to a cluster's address before Ray is asked to
RECONNECT_SETTING = "RAY_gcs_rpc_server_reconnect_timeout_s"  # Ray's own variable, its spelling
EXIT_LOST = 1  # the bot's runtime failure code (bot.__main__.EXIT_RUNTIME)


def grace_s() -> float:
    """Half of Ray's own GCS reconnect timeout (60 s unless set in its documented variable): a
    GCS that restarts (fault-tolerant clusters) is waited for, and the bot speaks before Ray ends
    the process with lines of its own."""
    try:
        timeout = float(os.environ.get(RECONNECT_SETTING, "60"))
    except ValueError:
        timeout = 60.0
    return max(1.0, timeout / 2)


def reachable(address: str, timeout: float = CHECK_S) -> OSError | None:
    """None if something listens at `host:port`, else why not."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        return exc
    except ValueError:
        return OSError(f"{address} is not host:port")
    return None


class GcsWatch:
    """Ends the process once the GCS at `address` has been unreachable for `grace_s()`."""

    def __init__(self, address: str, exit_process: Callable[[int], object] = os._exit) -> None:
        self.address = address
        self.away_since: float | None = None
        self._exit = exit_process  # os._exit: a graceful stop would wait on Ray calls that never return

    def check(self, now: float | None = None) -> None:
        if reachable(self.address) is None:
            self.away_since = None
            return
        now = time.monotonic() if now is None else now
        self.away_since = self.away_since or now
        if now - self.away_since < grace_s():
            return
        print(
            f"restyle-bot: lost the Ray cluster: its GCS at {self.address} has not answered for "
            f"{now - self.away_since:.0f} s; exiting so that systemd or Docker can start the bot again.",
            file=sys.stderr,
            flush=True,
        )
        self._exit(EXIT_LOST)
