"""Starts a keel server for the browser tests and reads what it logs: the endpoints each service
listens on and the dashboard's URL with its admin token. Stopped (and reaped) by stop() or at
exit of a `with` block, whatever happened in between."""

import os
import re
import signal
import subprocess
import threading
import time

LISTENING = re.compile(r"(\w+) listening on (127\.0\.0\.1|\[::1\]):(\d+)")
DASHBOARD_URL = re.compile(r"(http://(?:127\.0\.0\.1|\[::1\]):\d+)/#token=([A-Za-z0-9_.~%-]+)")


class KeelServer:
    def __init__(self, keel, args, workdir, start_timeout_s=30.0):
        self.log_lines = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([keel, *args], cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.start_timeout_s = start_timeout_s

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _read(self):
        for line in self.proc.stderr:
            with self._lock:
                self.log_lines.append(line.rstrip("\n"))

    def log(self):
        with self._lock:
            return "\n".join(self.log_lines)

    def wait_for(self, pattern, timeout_s=None):
        """The first match of `pattern` in the log, waiting up to timeout_s; raises if none."""
        deadline = time.monotonic() + (timeout_s or self.start_timeout_s)
        while time.monotonic() < deadline:
            match = pattern.search(self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"keel did not log {pattern.pattern!r} in time:\n{self.log()}")

    def port_of(self, service):
        pattern = re.compile(rf"\b{re.escape(service)} listening on (127\.0\.0\.1|\[::1\]):(\d+)")
        return int(self.wait_for(pattern).group(2))

    def dashboard_url(self):
        """(base URL, token) from the line keel logs when it made a token for the dashboard."""
        match = self.wait_for(DASHBOARD_URL)
        return match.group(1), match.group(2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
