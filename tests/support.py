"""Start real ASGI servers on free loopback ports for the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TypeVar

T = TypeVar('T')

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ('uvicorn', 'hypercorn', 'daphne')


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 10.0
) -> T:
    """Call ``condition`` until it returns something true; return that.

    Fails with :class:`TimeoutError` naming ``what``, the awaited
    event, once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f'waited {timeout} s in vain for {what}')
        time.sleep(0.02)
    return result


async def until(
    condition: Callable[[], T], what: str, timeout: float = 10.0
) -> T:
    """:func:`wait_until` inside a coroutine: the event loop runs on
    between the calls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := condition()):
        if loop.time() > deadline:
            raise TimeoutError(f'waited {timeout} s in vain for {what}')
        await asyncio.sleep(0.005)
    return result


def server_command(kind: str, target: str, port: int) -> list[str]:
    """Return the command line that serves ``target`` with server ``kind``."""
    if kind == 'uvicorn':
        return [
            sys.executable, '-m', 'uvicorn', target, '--host', '127.0.0.1',
            '--port', str(port), '--log-level', 'info', '--no-access-log',
        ]  # fmt: skip
    if kind == 'hypercorn':
        return [
            sys.executable, '-m', 'hypercorn', target,
            '--bind', f'127.0.0.1:{port}', '--graceful-timeout', '3',
        ]  # fmt: skip
    if kind == 'daphne':
        return [
            sys.executable, '-m', 'daphne', '-b', '127.0.0.1',
            '-p', str(port), target,
        ]  # fmt: skip
    raise ValueError(f'unknown server {kind!r}')


def wait_for_port(
    port: int, proc: subprocess.Popen, timeout: float = 20.0
) -> None:
    """Wait until something accepts on ``port``, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'server exited with {proc.returncode}')
        with (
            contextlib.suppress(OSError),
            socket.create_connection(('127.0.0.1', port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f'nothing listened on port {port} in {timeout} s')


class ServerProcess:
    """A server process this test run started, stopped by its PID."""

    def __init__(
        self,
        command: list[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | str = ROOT,
    ) -> None:
        self.command = command
        self.port = port
        self.kind = command[2] if len(command) > 2 else ''
        self._final_log = ''

        self.logfile = tempfile.NamedTemporaryFile(
            prefix='asgi-ws-server-', suffix='.log', delete=False
        )
        full_env = dict(os.environ)
        full_env['PYTHONPATH'] = os.pathsep.join(
            filter(None, [str(ROOT), full_env.get('PYTHONPATH')])
        )
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            command,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    @property
    def ws_url(self) -> str:
        return f'ws://127.0.0.1:{self.port}'

    def wait_ready(self, timeout: float = 20.0) -> ServerProcess:
        if self.port is None:
            raise RuntimeError('no port to wait for')
        try:
            wait_for_port(self.port, self.proc, timeout)
        except Exception:
            self.stop()
            raise RuntimeError(
                f'server failed to start:\n{self.log()}'
            ) from None
        return self

    def log(self) -> str:
        """Everything the server printed so far."""
        if self.logfile.closed:
            return self._final_log
        self.logfile.flush()
        return Path(self.logfile.name).read_text(errors='replace')

    def wait_for_log(
        self,
        text: str,
        start: int = 0,
        count: int = 1,
        timeout: float = 10.0,
    ) -> str:
        """Wait until ``text`` stands ``count`` times in the log after
        ``start`` (a length of :meth:`log`); return that part of the log.

        Fails with :class:`TimeoutError` after ``timeout`` seconds.
        """

        def logged() -> str:
            log = self.log()[start:]
            return log if log.count(text) >= count else ''

        return wait_until(
            logged, f'{text!r} logged {count} times', timeout
        )

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process: SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.logfile.closed:
            self._final_log = self.log()
            self.logfile.close()


def denied(server: ServerProcess, status: int) -> int:
    """The status a refusal shows on ``server``: daphne always says 403."""
    return 403 if server.kind == 'daphne' else status


def closed(server: ServerProcess, code: int) -> int:
    """The close code a client sees when the application sends ``code``.

    daphne refuses 1001-2999 from an application: the add-on sends the
    private-range code standing for it there (1011 as 4011).
    """
    if server.kind == 'daphne' and 1000 < code < 2000:
        return code + 3000
    return code


@contextlib.contextmanager
def serve(
    kind: str, target: str, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Serve ``target`` (``module:attr``) with ``kind`` on a free port."""
    port = free_port()
    server = ServerProcess(server_command(kind, target, port), port, env)
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()
        os.unlink(server.logfile.name)
