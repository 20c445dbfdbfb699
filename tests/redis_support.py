"""A real ``redis-server`` on a free loopback port, for the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from tests.support import free_port


def redis_available() -> bool:
    """Whether a ``redis-server`` binary is on the path."""
    return shutil.which('redis-server') is not None


class RedisServer:
    """A ``redis-server`` this test run started, stopped by its PID.

    No persistence: a restart comes back empty, as after a crash; with
    ``persist``, an append-only file written on every command keeps the
    data across a restart.
    """

    def __init__(self, port: int | None = None, persist: bool = False) -> None:
        self.port = port or free_port()
        self.persist = persist
        self.dir = tempfile.mkdtemp(prefix='asgi-ws-redis-')
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers ``PING``."""
        self.proc = subprocess.Popen(
            [
                'redis-server',
                '--port',
                str(self.port),
                '--bind',
                '127.0.0.1',
                '--save',
                '',
                '--appendonly',
                'yes' if self.persist else 'no',
                '--appendfsync',
                'always',
                '--dir',
                self.dir,
                '--daemonize',
                'no',
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f'redis-server exited with {self.proc.returncode}'
                )
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f'redis-server did not answer in {timeout} s')

    def ping(self) -> bool:
        """Whether the server answers ``PING`` right now."""
        try:
            with socket.create_connection(
                ('127.0.0.1', self.port), timeout=0.5
            ) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(64).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) by its PID."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self) -> RedisServer:
        """Stop and start again on the same port, with no data."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
