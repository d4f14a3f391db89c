"""Network audit for the offline tests: with NST_NET_AUDIT set to a file, every Python process that
starts with this folder on PYTHONPATH (the pipeline's launcher and its DirectRunner worker
processes) appends each attempt to reach a host other than this machine to that file.

Python's audit events ``socket.getaddrinfo`` and ``socket.connect`` cover every Python-level client
(google-auth's metadata-server probe, requests, http.client, urllib3), which is where a stray
download or credential lookup would come from.
"""

from __future__ import annotations

import os
import socket
import sys

LOCAL = {"localhost", "::1", "0.0.0.0", "", socket.gethostname()}


def is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    return host in LOCAL or host.startswith("127.") or host.endswith(".localhost")


def install(log_path: str) -> None:
    def hook(event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect":
            address = args[1]
            if not isinstance(address, tuple):  # AF_UNIX path
                return
            host = address[0]
        else:
            return
        if not is_local(host):
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(f"pid {os.getpid()} {event} {host!r} argv {' '.join(sys.argv)[:200]}\n")

    sys.addaudithook(hook)


if os.environ.get("NST_NET_AUDIT"):
    install(os.environ["NST_NET_AUDIT"])
