"""A client that promises a body (Content-Length) and never sends it gets 408 and frees its thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = dict(os.environ, REQUEST_READ_TIMEOUT_SECONDS="1.5", LOOKALIKE_PROFILE="offline")
    # As README runs it: migrated first (the shared cache that holds throttle budgets is a table).
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO_ROOT, env=env, check=True)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("runserver did not start")
    yield port
    process.terminate()
    process.wait(timeout=20)


def test_a_body_that_never_arrives_is_answered_408_in_time(server):
    with socket.create_connection(("127.0.0.1", server), timeout=15) as connection:
        connection.sendall(
            b"POST /api/search/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\n"
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert waited < 12, "answered after the read timeout, not held open"
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/api/schema/", timeout=15) as response:
        assert response.status == 200, "the server still serves others"
