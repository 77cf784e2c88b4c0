"""A minimal QMP client over ternd's unix socket: one JSON object per line, both ways."""
import json
import socket
import time


# tern's downstream QMP prefix (control/qmp_names.h, docs/cli.md): its commands, capability,
# parameters and query-migrate members that QEMU does not have carry it.
TERN_EXTENSION = "__io.github.tern_"


def ext(name):
    """The QMP name of tern's extension `name` ("query-guest" -> "__io.github.tern_query-guest")."""
    return TERN_EXTENSION + name


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout=30.0):
        self.path = path
        # The socket file exists from ternd's bind(); until its listen(), a connect is refused.
        # On a slow CPU (the soft-RoCE VM under TCG) that window is seen: retry for a while.
        deadline = time.monotonic() + 10
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
                break
            except ConnectionRefusedError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError(f"{self.path}: ternd closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall((json.dumps(msg) + "\n").encode())
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QmpError(f"{cmd}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_status(qmp, want, timeout, interval=0.05, on_sample=None):
    """Polls query-migrate until status is in `want` (a set) or terminal; returns the reply."""
    deadline = time.monotonic() + timeout
    terminal = {"completed", "failed", "cancelled"}
    while True:
        info = qmp.execute("query-migrate")
        if on_sample:
            on_sample(info)
        if info.get("status") in want or info.get("status") in terminal:
            return info
        if time.monotonic() > deadline:
            raise QmpError(f"timed out after {timeout:.0f} s waiting for {sorted(want)} "
                           f"(status {info.get('status')})")
        time.sleep(interval)
