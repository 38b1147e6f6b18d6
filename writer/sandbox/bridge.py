"""The in-sandbox half of ``restricted`` networking: 127.0.0.1:3128 -> the egress proxy socket.

A ``restricted`` sandbox has an empty network namespace (only its own loopback), so the one way
out is the proxy's Unix socket bound into it. :data:`BRIDGE_SOURCE` runs inside the sandbox with the
system's ``python3`` and only the standard library: it binds the loopback port *before* the
command starts (no race), forks a relay that serves it, and then ``exec``s the command. When the
command ends, bubblewrap tears the PID namespace down and the relay with it.
"""

from __future__ import annotations

from .bubblewrap import EGRESS_SOCKET, PROXY_PORT

__all__ = ["BRIDGE_SOURCE", "bridge_prefix", "proxy_env"]

BRIDGE_SOURCE = f"""
import os, socket, sys, threading
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", {PROXY_PORT}))
listener.listen(128)
if os.fork() == 0:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    def relay(source, target):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    def serve(client):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect({EGRESS_SOCKET!r})
        except OSError:
            client.close()
            return
        back = threading.Thread(target=relay, args=(upstream, client), daemon=True)
        back.start()
        relay(client, upstream)
        back.join()
        client.close()
        upstream.close()
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=serve, args=(client,), daemon=True).start()
listener.close()
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    sys.stderr.write("sandbox: cannot run %s: %s\\n" % (sys.argv[1], exc.strerror))
    sys.exit(127)
"""


def bridge_prefix() -> list[str]:
    """The argv prefix that starts the bridge in front of a command."""
    return ["python3", "-I", "-S", "-c", BRIDGE_SOURCE]


def proxy_env() -> dict[str, str]:
    """The proxy variables every common client honours (upper and lower case)."""
    url = f"http://127.0.0.1:{PROXY_PORT}"
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = url
    # The sandbox's own loopback stays local (a test suite's server inside the sandbox).
    env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
    return env
