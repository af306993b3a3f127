#!/usr/bin/python3
"""The dashboard in a real browser (issue 10, item 5): keel serve with --http, the page in
headless Chromium, clients on real sockets. Checks that clients appear within 2 s, that the
charts move with traffic, that a page without the token is read-only, that kick from the page
disconnects the right client, and that attach shows a hub client's line and sends it a reply.

  /usr/bin/python3 tests/browser/dashboard_test.py --keel build/release/keel
  /usr/bin/python3 tests/browser/dashboard_test.py --keel build/release/keel --screenshot docs/dashboard.png
"""

import argparse
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import start_browser, wait_until  # noqa: E402
from keel_process import KeelServer  # noqa: E402

APPEAR_WITHIN_S = 2.0  # the bound for a new client to show in the table


class LineClient:
    """A blocking TCP client with a bounded read timeout."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(5)
        self.peer = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.pending = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self, timeout_s=5.0):
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.peer}: no line within {timeout_s} s (have {self.pending!r})")
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"{self.peer}: EOF while waiting for a line")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    def sees_eof(self, timeout_s=5.0):
        """True once the server closed the connection (reads drained), within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(4096):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.sock.close()


def rows(driver):
    """The client table as the page shows it: peer -> id."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#clients tbody tr')]"
        ".map(tr => [tr.dataset.peer, tr.dataset.id]));")


def chart_state(driver, chart_id):
    return driver.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "return {points: Number(c.dataset.points || 0), peak: Number(c.dataset.peak || 0),"
        "        pixels: c.toDataURL()};", chart_id)


def row_button(driver, peer, action):
    return driver.execute_script(
        "const tr = [...document.querySelectorAll('#clients tbody tr')]"
        "  .find(r => r.dataset.peer === arguments[0]);"
        "return tr ? tr.querySelector('button[data-action=\"' + arguments[1] + '\"]') : null;",
        peer, action)


def click_row_button(driver, peer, action):
    # The table is rebuilt every second: find the button afresh for each click.
    button = wait_until(f"the {action} button of {peer}", lambda: row_button(driver, peer, action), 5)
    button.click()


def check_read_only(driver, base):
    driver.get(base + "/")
    wait_until("the read-only badge", lambda: driver.execute_script(
        "return document.getElementById('token-state').textContent === 'read-only'"), 10)
    hint = driver.find_element("id", "action-hint")
    assert hint.is_displayed() and "token" in hint.text, hint.text
    wait_until("a client row", lambda: driver.execute_script(
        "return document.querySelectorAll('#clients tbody tr').length > 0"), 10)
    enabled = driver.execute_script(
        "return [...document.querySelectorAll('#clients button, #broadcast-open')]"
        ".filter(b => !b.disabled).length")
    assert enabled == 0, f"{enabled} action buttons enabled without a token"


def check_clients_appear(driver, port):
    clients = []
    started = time.monotonic()
    for _ in range(3):
        clients.append(LineClient(port))
    peers = {c.peer for c in clients}
    seen = wait_until("3 new clients in the table", lambda: peers <= set(rows(driver)), APPEAR_WITHIN_S)
    print(f"clients appeared in the table {time.monotonic() - started:.2f} s after connecting")
    assert seen
    return clients


def check_chart_moves(driver, clients):
    before = chart_state(driver, "chart-msgs")
    # Echo traffic for a few seconds, so at least one stats event sees it.
    deadline = time.monotonic() + 3.0
    sent = 0
    while time.monotonic() < deadline:
        for c in clients:
            c.send(b"x" * 30 + b"\n")
            assert c.read_line() == b"x" * 30
            sent += 1
    def moved():
        now = chart_state(driver, "chart-msgs")
        return (now["points"] > before["points"] and now["pixels"] != before["pixels"]
                and now["peak"] > 0) and now
    now = wait_until("the messages/s chart to show the traffic", moved, 10)
    print(f"sent {sent} lines; chart points {before['points']} -> {now['points']}, peak {now['peak']:.0f} msgs/s")


def check_kick(driver, victim, bystander):
    click_row_button(driver, victim.peer, "kick")
    click_row_button(driver, victim.peer, "kick")  # the second click confirms
    assert victim.sees_eof(5.0), f"kicked client {victim.peer} saw no EOF within 5 s"
    victim.close()  # keel keeps a kicked connection until its FIN (or 5 s)
    bystander.send(b"still here\n")
    assert bystander.read_line() == b"still here", "the other client was disturbed by the kick"
    wait_until("the kicked client to leave the table", lambda: victim.peer not in rows(driver), 5)
    result = driver.find_element("id", "action-result").text
    assert "kicked" in result, result


def check_attach(driver, port):
    client = LineClient(port)
    assert client.read_line().startswith(b"* keel hub"), "no hub greeting"
    client.send(b"hello from a parked client <b>bold?</b>\x1b[2J\n")
    wait_until("the hub client in the table", lambda: client.peer in rows(driver), 5)
    click_row_button(driver, client.peer, "attach")
    log = lambda: driver.find_element("id", "terminal-log").text  # noqa: E731
    wait_until("the parked line in the terminal", lambda: "hello from a parked client" in log(), 10)
    assert "<b>bold?</b>\\x1b[2J" in log(), f"client text not shown literally: {log()!r}"
    markup = driver.execute_script("return document.querySelectorAll('#terminal-log b').length")
    assert markup == 0, "client text became markup"
    wait_until("the terminal input enabled", lambda: driver.find_element("id", "terminal-input").is_enabled(), 5)
    field = driver.find_element("id", "terminal-input")
    field.send_keys("hello from the operator\n")
    # Typed by the browser, posted, then written to the client: on a loaded machine (CI's
    # parallel tests) that took over 5 s once.
    assert client.read_line(15.0) == b"hello from the operator"
    client.send(b"thanks\n")
    wait_until("the live line in the terminal", lambda: "thanks" in log(), 5)
    driver.find_element("id", "terminal-detach").click()
    wait_until("the terminal closed", lambda: not driver.find_element("id", "terminal").is_displayed(), 5)
    client.close()


def stage_screenshot(driver, echo_port, chat_port, hub_port, path, seconds=25.0):
    """A dashboard with some life in it for docs/dashboard.png: chat members in rooms, echo
    clients with traffic that rises and falls while the screenshot is taken."""
    members = []
    for nick, room in [("ann", "#lobby"), ("bob", "#lobby"), ("cid", "#ops"), ("dee", "#lobby"),
                       ("eve", "#ops")]:
        c = LineClient(chat_port)
        c.send(f"/nick {nick}\n/join {room}\n".encode())
        members.append(c)
    echoes = [LineClient(echo_port) for _ in range(6)]
    parked = [LineClient(hub_port) for _ in range(2)]
    for k, c in enumerate(parked):
        c.send(f"client {k} waiting for an operator\n".encode())
    stop = threading.Event()

    def traffic():
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < seconds + 30:
            phase = int(time.monotonic() - started)
            for c in echoes[: 1 + phase % 6]:
                c.send(b"y" * 200 + b"\n")
                c.read_line()
            members[phase % len(members)].send(b"hello everyone\n")
            for m in members:  # keep the chat members' input drained
                m.sock.settimeout(0.0005)
                try:
                    m.sock.recv(65536)
                except (socket.timeout, BlockingIOError):
                    pass
            time.sleep(0.002)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        LineClient(echo_port).close()  # one closed by its peer, for the close reasons
        time.sleep(seconds)  # the charts fill at one point a second: let a stretch of them show
        wait_until("the table with every client", lambda: len(rows(driver)) >= 14, 5)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(path)
    finally:
        stop.set()
        worker.join(timeout=10)
    for c in members + echoes + parked:
        c.close()


def browser_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keel", required=True, help="the keel binary")
    parser.add_argument("--screenshot", help="also save a screenshot of the dashboard to this PNG")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keel-browser-") as workdir:
        server = KeelServer(args.keel, ["serve", "--echo", "127.0.0.1:0", "--chat", "127.0.0.1:0",
                                        "--hub", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                        "--admin", "none"], workdir)
        driver = None
        with server:
            try:
                base, token = server.dashboard_url()
                echo_port, hub_port = server.port_of("echo"), server.port_of("hub")
                driver = start_browser(os.path.join(workdir, "chromium"))
                seed = LineClient(echo_port)
                check_read_only(driver, base)
                driver.get(f"{base}/#token={token}")
                wait_until("the admin badge", lambda: driver.execute_script(
                    "return document.getElementById('token-state').textContent === 'admin'"), 10)
                assert "token" not in driver.current_url, "the token stayed in the address bar"
                clients = check_clients_appear(driver, echo_port)
                check_chart_moves(driver, clients)
                check_kick(driver, clients[1], clients[0])
                check_attach(driver, hub_port)
                if args.screenshot:
                    stage_screenshot(driver, echo_port, server.port_of("chat"), hub_port,
                                     args.screenshot)
                    print(f"screenshot: {args.screenshot}")
                errors = browser_errors(driver)
                assert not errors, f"the page logged errors: {errors}"
                for c in clients + [seed]:
                    c.close()
            except Exception:
                print("keel's log:\n" + server.log(), file=sys.stderr)
                raise
            finally:
                if driver is not None:
                    driver.quit()
    print("dashboard browser test passed")


if __name__ == "__main__":
    main()
