"""Run the benchmark: ``python -m bench [--smoke] [--json PATH]``.

Each variant runs in a real server process on loopback, pinned to one
core; the load generators (``wrk``, :mod:`bench.wsclient` and the small
clients below) run on another.  Server CPU time is read from
``/proc/PID/stat`` before and after each load, peak RSS by sampling
``/proc/PID/status``.
"""

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing

import bench.asyncviews
import bench.broadcast
import bench.handshakes
import bench.history
import bench.soak

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
MiB = 1024 * 1024

#: (column, server, factory) for the HTTP scenarios.
HTTP_VARIANTS = [
    ('pyramid_asgi_ws', 'uvicorn', 'bridge'),
    ('asgiref', 'uvicorn', 'asgiref'),
    ('a2wsgi', 'uvicorn', 'a2wsgi'),
    ('waitress', 'waitress', 'wsgi'),
    ('raw ASGI', 'uvicorn', 'raw'),
    ('granian WSGI', 'granian-wsgi', 'wsgi'),
    ('granian+ours', 'granian', 'bridge'),
    ('granian raw', 'granian', 'raw'),
]
#: (column, server, factory) run with the hello scenario only: the steps
#: from the raw ASGI hello to the add-on (see :func:`breakdown`).
HELLO_VARIANTS = [
    ('raw+handoff', 'uvicorn', 'handoff'),
    ('bridge alone', 'uvicorn', 'bare'),
]
#: (column, factory) for the WebSocket scenarios, all on uvicorn.
WS_VARIANTS = [
    ('pyramid_asgi_ws', 'websocket'),
    ('raw ASGI', 'raw'),
]

FULL = {
    'wrk_seconds': 10,
    'wrk_connections': 64,
    'burst': 20,
    'stream_bytes': 1024 * MiB,
    'upload_bytes': 200 * 1000 * 1000,
    'ws_connections': 64,
    'ws_seconds': 5,
    'ws_rounds': 3,
    'idle_connections': 10000,
    'warm': True,
}
SMOKE = {
    'wrk_seconds': 1,
    'wrk_connections': 16,
    'burst': 20,
    'stream_bytes': 16 * MiB,
    'upload_bytes': 8 * MiB,
    'ws_connections': 8,
    'ws_seconds': 1,
    'ws_rounds': 1,
    'idle_connections': 200,
    'warm': False,
}


def _cores() -> tuple[list[str], list[str]]:
    """``taskset`` prefixes for the server and for the load generator."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which('taskset'):
        return [], []
    return (
        ['taskset', '-c', str(cpus[0])],
        ['taskset', '-c', str(cpus[1])],
    )


SERVER_CORE, CLIENT_CORE = _cores()


def raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids = [pid]
    for task in os.listdir(f'/proc/{pid}/task'):
        with contextlib.suppress(OSError):
            with open(f'/proc/{pid}/task/{task}/children') as f:
                for child in f.read().split():
                    pids.extend(_tree(int(child)))
    return pids


def _cpu(pid: int) -> float:
    """utime + stime of ``pid``, in seconds (0 once it is gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Server:
    """One server process, pinned to the server core."""

    def __init__(self, kind: str, factory: str) -> None:
        self.port = free_port()
        if kind == 'waitress':
            argv = [
                '-m',
                'waitress',
                '--host=127.0.0.1',
                f'--port={self.port}',
                '--threads=32',
                '--call',
                f'bench.apps:{factory}',
            ]
        elif kind.startswith('granian'):
            # one worker process (granian forks it): cpu() counts both
            interface = 'wsgi' if kind == 'granian-wsgi' else 'asgi'
            argv = [
                '-m',
                'granian',
                f'--interface={interface}',
                '--factory',
                '--host=127.0.0.1',
                f'--port={self.port}',
                '--workers=1',
                '--backlog=4096',
                '--log-level=warning',
                '--no-access-log',
                f'bench.apps:{factory}',
            ]
        else:
            argv = [
                '-m',
                'uvicorn',
                '--factory',
                f'bench.apps:{factory}',
                '--host',
                '127.0.0.1',
                f'--port={self.port}',
                '--backlog=4096',
                '--log-level=warning',
                '--no-access-log',
            ]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            SERVER_CORE + [sys.executable] + argv,
            cwd=ROOT,
            env=ENV,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
        )
        self.pid = self.proc.pid  # taskset execs the server
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f'{kind} {factory} did not start'
                    ) from None
                time.sleep(0.05)

    def cpu(self) -> float:
        """utime + stime of the process and its live children (granian's
        worker), in seconds."""
        return sum(map(_cpu, _tree(self.pid)))

    def rss(self) -> int:
        """Resident set size in bytes."""
        with open(f'/proc/{self.pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        return 0  # pragma: no cover

    @contextlib.contextmanager
    def peak_rss(self) -> typing.Iterator[dict[str, int]]:
        """Sample RSS while the block runs; yields a dict that ends with
        ``base`` and ``peak``."""
        result = {'base': self.rss(), 'peak': 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                result['peak'] = max(result['peak'], self.rss())

        thread = threading.Thread(target=sample)
        thread.start()
        try:
            yield result
        finally:
            done.set()
            thread.join()
            result['peak'] = max(result['peak'], self.rss())

    def errors(self) -> str:
        self.log.seek(0)
        text = self.log.read().decode('utf-8', 'replace')
        return text if ('Traceback' in text or 'ERROR' in text) else ''

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- HTTP scenarios ----------------------------------------------------------

_UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1000.0}


def wrk(server: Server, seconds: float, connections: int) -> dict:
    """Hello-world load with ``wrk`` on keep-alive connections."""
    url = f'http://127.0.0.1:{server.port}/'
    base = CLIENT_CORE + ['wrk', '-t1', f'-c{connections}', '--latency']
    subprocess.run(
        base + ['-d1s', url], check=True, capture_output=True, timeout=60
    )
    before = server.cpu()
    out = subprocess.run(
        base + [f'-d{seconds}s', url],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    cpu = server.cpu() - before
    requests = int(re.search(r'(\d+) requests in', out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r'99%\s+([\d.]+)(us|ms|s)\b', out)
    non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    errors = re.search(
        r'Socket errors: connect (\d+), read (\d+), write (\d+), '
        r'timeout (\d+)',
        out,
    )
    return {
        'rps': float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1)),  # type: ignore[union-attr]
        'p99_ms': float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else None,
        'non2xx': int(non2xx.group(1)) if non2xx else 0,
        'socket_errors': sum(map(int, errors.groups())) if errors else 0,
        'cpu_us': cpu / max(requests, 1) * 1e6,
        'requests': requests,
    }


def burst(server: Server, count: int, warm: bool) -> dict:
    """``count`` concurrent requests to a view that sleeps 200 ms."""

    def one(conn: http.client.HTTPConnection, statuses: list) -> None:
        conn.request('GET', '/sleep')
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)

    def run() -> tuple[float, list[int]]:
        statuses: list[int] = []
        conns = []
        for _ in range(count):
            conn = http.client.HTTPConnection('127.0.0.1', server.port, 30)
            conn.connect()
            conns.append(conn)
        threads = [
            threading.Thread(target=one, args=(c, statuses)) for c in conns
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.perf_counter() - start
        for conn in conns:
            conn.close()
        return elapsed, statuses

    if warm:
        run()  # start the thread pools' threads
    elapsed, statuses = run()
    return {
        'wall_s': elapsed,
        'ok': statuses.count(200) == count,
    }


def _request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(('127.0.0.1', port), 30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
    sock.sendall(head)
    return sock


def _read_response(sock: socket.socket) -> tuple[bytes, int]:
    """Read a ``Connection: close`` response: (head, body size)."""
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    data = b''
    while b'\r\n\r\n' not in data:
        n = sock.recv_into(view)
        if not n:
            break
        data += bytes(view[:n])
    head, _, rest = data.partition(b'\r\n\r\n')
    size = len(rest)
    while True:
        n = sock.recv_into(view)
        if not n:
            break
        size += n
    sock.close()
    return head, size


def stream(server: Server, size: int) -> dict:
    """Read a streamed response of ``size`` bytes."""

    def head(size: int) -> bytes:
        return (
            f'GET /stream?size={size} HTTP/1.1\r\nHost: bench\r\n'
            'Connection: close\r\n\r\n'
        ).encode()

    _read_response(_request(server.port, head(4 * MiB)))  # warm up
    with server.peak_rss() as rss:
        start = time.perf_counter()
        status, received = _read_response(_request(server.port, head(size)))
        elapsed = time.perf_counter() - start
    return {
        'mb_s': received / elapsed / 1e6,
        'rss_mib': (rss['peak'] - rss['base']) / MiB,
        'ok': received == size and status.startswith(b'HTTP/1.1 200'),
    }


def upload(server: Server, size: int) -> dict:
    """Upload ``size`` bytes to a view that reads them in 64 KiB reads."""
    chunk = memoryview(b'u' * MiB)
    with server.peak_rss() as rss:
        start = time.perf_counter()
        sock = _request(
            server.port,
            (
                f'POST /upload HTTP/1.1\r\nHost: bench\r\n'
                f'Content-Length: {size}\r\nConnection: close\r\n\r\n'
            ).encode(),
        )
        left = size
        while left:
            part = chunk[: min(left, len(chunk))]
            sock.sendall(part)
            left -= len(part)
        sock.settimeout(120)
        received = b''
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        sock.close()
        elapsed = time.perf_counter() - start
    return {
        'mb_s': size / elapsed / 1e6,
        'rss_mib': (rss['peak'] - rss['base']) / MiB,
        'ok': received.endswith(b'\r\n\r\n%d' % size),
    }


# -- WebSocket scenarios -----------------------------------------------------


def _wsclient(*args: object, seconds: float = 60) -> str:
    """Run :mod:`bench.wsclient` on the client core; its output."""
    argv = [sys.executable, '-m', 'bench.wsclient'] + [str(a) for a in args]
    return subprocess.run(
        CLIENT_CORE + argv,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    ).stdout


def ws_echo(server: Server, connections: int, seconds: float) -> dict:
    url = f'ws://127.0.0.1:{server.port}/ws'
    _wsclient('echo', url, 2, 0.5)  # warm up
    before = server.cpu()
    result = json.loads(_wsclient('echo', url, connections, seconds))
    cpu = server.cpu() - before
    return {
        'msg_s': result['messages'] / result['seconds'],
        'p99_ms': result['p99_ms'],
        'cpu_us': cpu / max(result['messages'], 1) * 1e6,
        'ok': result['messages'] > 0,
    }


def ws_idle(server: Server, connections: int) -> dict:
    url = f'ws://127.0.0.1:{server.port}/ws'
    _wsclient('echo', url, 1, 0.2)  # warm up
    time.sleep(0.5)
    base = server.rss()
    client = subprocess.Popen(
        CLIENT_CORE
        + [sys.executable, '-m', 'bench.wsclient', 'idle', url]
        + [str(connections)],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=raise_nofile,
    )
    try:
        line = client.stdout.readline()  # type: ignore[union-attr]
        opened = int(line.split()[1]) if line.startswith('READY') else 0
        time.sleep(1)
        rss = server.rss()
    finally:
        client.stdin.close()  # type: ignore[union-attr]
        try:
            client.wait(60)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait(10)
    return {
        'kib_per_conn': (rss - base) / 1024 / max(opened, 1),
        'ok': opened == connections,
    }


# -- the run -----------------------------------------------------------------


Scenario = tuple[str, typing.Callable[..., dict], tuple]


def run_scenarios(
    kind: str,
    factory: str,
    scenarios: list[Scenario],
    fresh: bool,
) -> dict:
    """Run ``scenarios`` against one variant, on a fresh server each when
    ``fresh`` (it keeps RSS and CPU figures apart)."""
    results: dict[str, typing.Any] = {}
    server = None
    for name, scenario, args in scenarios:
        if server is None:
            server = Server(kind, factory)
        try:
            results[name] = scenario(server, *args)
        except Exception as exc:
            results[name] = {'error': repr(exc), 'ok': False}
        if fresh or name == scenarios[-1][0]:
            server.stop()
            log = server.errors()
            if log:
                results[name]['server_log'] = log[-2000:]
            server = None
    return results


def run_http(kind: str, factory: str, p: dict, fresh: bool) -> dict:
    return run_scenarios(
        kind,
        factory,
        [
            ('hello', wrk, (p['wrk_seconds'], p['wrk_connections'])),
            ('burst', burst, (p['burst'], p['warm'])),
            ('stream', stream, (p['stream_bytes'],)),
            ('upload', upload, (p['upload_bytes'],)),
        ],
        fresh,
    )


def run_ws(columns: list[tuple[str, str]], p: dict) -> dict[str, dict]:
    """The WebSocket scenarios.  The echo runs ``p['ws_rounds']`` times,
    the variants taking turns, and keeps the median of each figure: on a
    busy machine single runs move by 10 %."""
    echoes: dict[str, list[dict]] = {column: [] for column, _ in columns}
    args = (p['ws_connections'], p['ws_seconds'])
    for _ in range(p['ws_rounds']):
        for column, factory in columns:
            echo: Scenario = ('echo', ws_echo, args)
            result = run_scenarios('uvicorn', factory, [echo], True)
            echoes[column].append(result['echo'])
    results = {}
    for column, factory in columns:
        idle: Scenario = ('idle', ws_idle, (p['idle_connections'],))
        results[column] = run_scenarios('uvicorn', factory, [idle], True)
        results[column]['echo'] = _median(echoes[column])
    return results


def _median(runs: list[dict]) -> dict:
    good = [run for run in runs if 'error' not in run]
    if not good:
        return runs[0]
    merged = {
        'rounds': [run.get('cpu_us') for run in runs],
        'ok': all(run.get('ok') for run in runs),
    }
    for key in ('msg_s', 'p99_ms', 'cpu_us'):
        merged[key] = statistics.median(run[key] for run in good)
    return merged


ROWS = [
    ('hello req/s', 'hello', 'rps', '{:.0f}'),
    ('hello p99 ms', 'hello', 'p99_ms', '{:.2f}'),
    ('hello non-2xx', 'hello', 'non2xx', '{}'),
    ('hello server CPU/req us', 'hello', 'cpu_us', '{:.1f}'),
    ('20 x 200 ms burst wall s', 'burst', 'wall_s', '{:.3f}'),
    ('stream MB/s', 'stream', 'mb_s', '{:.0f}'),
    ('stream peak RSS +MiB', 'stream', 'rss_mib', '{:.1f}'),
    ('upload MB/s', 'upload', 'mb_s', '{:.0f}'),
    ('upload peak RSS +MiB', 'upload', 'rss_mib', '{:.1f}'),
    ('WS echo msg/s', 'echo', 'msg_s', '{:.0f}'),
    ('WS echo p99 ms', 'echo', 'p99_ms', '{:.2f}'),
    ('WS echo server CPU/msg us', 'echo', 'cpu_us', '{:.1f}'),
    ('WS idle KiB/conn', 'idle', 'kib_per_conn', '{:.1f}'),
]


def _cell(results: dict, scenario: str, key: str, fmt: str) -> str:
    data = results.get(scenario)
    if data is None:
        return '-'
    if 'error' in data:
        return 'error'
    value = data.get(key)
    text = '-' if value is None else fmt.format(value)
    return text if data.get('ok', True) else text + '!'


def table(results: dict[str, dict]) -> str:
    columns = list(results)
    labels = [row[0] for row in ROWS]
    cells = [
        [_cell(results[c], s, k, f) for c in columns] for _, s, k, f in ROWS
    ]
    width0 = max(map(len, labels))
    widths = [
        max(len(c), *(len(row[i]) for row in cells))
        for i, c in enumerate(columns)
    ]
    rule = ' '.join('=' * w for w in [width0] + widths)
    lines = [rule]
    lines.append(
        ' '.join(
            [''.ljust(width0)]
            + [c.rjust(w) for c, w in zip(columns, widths, strict=True)]
        )
    )
    lines.append(rule)
    for label, row in zip(labels, cells, strict=True):
        lines.append(
            ' '.join(
                [label.ljust(width0)]
                + [v.rjust(w) for v, w in zip(row, widths, strict=True)]
            )
        )
    lines.append(rule)
    return '\n'.join(lines)


def in_process(smoke: bool) -> dict[str, float]:
    """:mod:`bench.hotpath`'s figures, measured on the server core."""
    argv = [sys.executable, '-m', 'bench.hotpath']
    out = subprocess.run(
        SERVER_CORE + argv + (['--smoke'] if smoke else []),
        cwd=ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def breakdown(results: dict[str, dict]) -> str:
    """Where the server CPU of a hello request goes on uvicorn, step by
    step from the raw ASGI hello to the add-on serving Pyramid."""
    steps = [
        ('raw ASGI hello', 'raw ASGI'),
        ('+ an empty call in the thread pool', 'raw+handoff'),
        ('the bridge serving a WSGI hello function', 'bridge alone'),
        ('make_asgi_app() serving the Pyramid view', 'pyramid_asgi_ws'),
    ]
    lines = ['server CPU us/request on uvicorn, step by step:']
    last = None
    for label, column in steps:
        value = _get(results, column, 'hello', 'cpu_us')
        if value != value:
            continue
        step = '' if last is None else f' ({value - last:+.1f})'
        lines.append(f'  {label:<42} {value:6.1f}{step}')
        last = value
    return '\n'.join(lines)


def _get(results: dict, column: str, scenario: str, key: str) -> float:
    value = results.get(column, {}).get(scenario, {}).get(key)
    return float('nan') if value is None else float(value)


def targets(results: dict[str, dict]) -> list[tuple[str, float, float]]:
    """The issue's done-when targets from this run's figures, as
    ``(label, value, limit)``: met when ``value <= limit``."""
    ours = 'pyramid_asgi_ws'
    cpu = _get(results, ours, 'hello', 'cpu_us')
    hello_errors = _get(results, ours, 'hello', 'non2xx') + _get(
        results, ours, 'hello', 'socket_errors'
    )
    ws_cpu = _get(results, ours, 'echo', 'cpu_us')
    pyramid = results.get('in-process', {}).get('pyramid', float('nan'))
    raw = _get(results, 'raw ASGI', 'hello', 'cpu_us')
    granian = _get(results, 'granian WSGI', 'hello', 'cpu_us')
    return [
        ('hello non-2xx + socket errors, wrk keep-alive', hello_errors, 0),
        (
            'CPU/request / a2wsgi',
            cpu / _get(results, 'a2wsgi', 'hello', 'cpu_us'),
            2 / 3,
        ),
        (
            'CPU/request / asgiref',
            cpu / _get(results, 'asgiref', 'hello', 'cpu_us'),
            1 / 2,
        ),
        (
            'CPU/request / (raw ASGI + in-process Pyramid)',
            cpu / (raw + pyramid),
            1.3,
        ),
        (
            'granian+ours CPU/request / granian WSGI',
            _get(results, 'granian+ours', 'hello', 'cpu_us') / granian,
            1.5,
        ),
        (
            '20 x 200 ms burst / 200 ms',
            _get(results, ours, 'burst', 'wall_s') / 0.2,
            1.5,
        ),
        (
            'stream peak RSS rise, MiB',
            _get(results, ours, 'stream', 'rss_mib'),
            31.99,
        ),
        (
            'upload peak RSS rise, MiB',
            _get(results, ours, 'upload', 'rss_mib'),
            31.99,
        ),
        (
            'WS echo CPU/message / raw',
            ws_cpu / _get(results, 'raw ASGI', 'echo', 'cpu_us'),
            1.1,
        ),
        (
            'idle WebSocket KiB/connection',
            _get(results, ours, 'idle', 'kib_per_conn'),
            24,
        ),
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    return (
        f'{datetime.date.today().isoformat()}, {cpu}, '
        f'{os.cpu_count()} CPUs, Linux {platform.release()}, '
        f'Python {platform.python_version()}'
    )


def broadcast_table(rows: list[dict]) -> str:
    """One line per fan-out scenario: delivery latency against its aim."""
    lines = [
        'broadcast fan-out (one message to every socket, repeated)',
        f'{"scenario":<44} {"sockets":>7} {"p50 ms":>7} {"p99 ms":>7}'
        f' {"aim p99":>7}  verdict',
    ]
    for item in rows:
        if 'error' in item:
            lines.append(f'{item["name"]:<44} error: {item["error"]}')
            continue
        verdict = 'met' if item['met'] else 'MISSED'
        if not item['ok']:
            verdict += f' (lost {item["expected"] - item["received"]})'
        lines.append(
            f'{item["name"]:<44} {item["sockets"]:>7} {item["p50_ms"]:>7.1f}'
            f' {item["p99_ms"]:>7.1f} {item["target_p99_ms"]:>7.0f}  '
            + verdict
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench')
    parser.add_argument(
        '--smoke', action='store_true', help='a seconds-long run for CI'
    )
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument(
        '--only',
        help='comma-separated columns to run (default: all)',
    )
    args = parser.parse_args(argv)
    p = SMOKE if args.smoke else FULL
    if not shutil.which('wrk'):
        sys.exit('wrk is needed: apt-get install wrk')
    raise_nofile()
    if CLIENT_CORE:
        os.sched_setaffinity(0, {int(CLIENT_CORE[-1])})
    only = set(args.only.split(',')) if args.only else None
    started = time.monotonic()
    results: dict[str, dict] = {}
    for column, kind, factory in HTTP_VARIANTS:
        if only is None or column in only:
            print(f'.. {column} (HTTP)', file=sys.stderr, flush=True)
            results[column] = run_http(kind, factory, p, not args.smoke)
    for column, kind, factory in HELLO_VARIANTS:
        if only is None or column in only:
            print(f'.. {column} (HTTP hello)', file=sys.stderr, flush=True)
            hello: Scenario = (
                'hello',
                wrk,
                (p['wrk_seconds'], p['wrk_connections']),
            )
            results[column] = run_scenarios(kind, factory, [hello], True)
    columns = [c for c in WS_VARIANTS if only is None or c[0] in only]
    if columns:
        print('.. WebSocket', file=sys.stderr, flush=True)
        for column, ws_results in run_ws(columns, p).items():
            results.setdefault(column, {}).update(ws_results)
    if only is None or 'in-process' in only:
        print('.. in process', file=sys.stderr, flush=True)
        results['in-process'] = in_process(args.smoke)
    print(machine())
    print('mode:', 'smoke' if args.smoke else 'full', json.dumps(p))
    print(table({k: v for k, v in results.items() if k != 'in-process'}))
    print('(! = the scenario answered wrongly; see --json)')
    print(breakdown(results))
    if 'in-process' in results:
        figures = results['in-process']
        print(
            'in process, CPU us/request: Pyramid hello view '
            f'{figures["pyramid"]:.1f}, make_asgi_app() + a fake server '
            f'{figures["bridge"]:.1f}, loop -> pool -> loop handoff '
            f'{figures["handoff"]:.1f}'
        )
    failed = False
    for label, value, limit in targets(results):
        if only is None or value == value:  # with --only, those it ran
            verdict = 'met' if value <= limit else 'MISSED'
            print(f'[{verdict}] {label}: {value:.2f} (at most {limit:.2f})')
    for column, scenarios in results.items():
        if column == 'in-process':
            continue
        for name, data in scenarios.items():
            if not data.get('ok', True) or 'error' in data:
                failed = True
                print(f'{column} {name}: {data}', file=sys.stderr)
    ours = results.get('pyramid_asgi_ws', {})
    if ours.get('hello', {}).get('non2xx'):
        failed = True
    fanout: list[dict] = []
    if only is None or 'broadcast' in only:
        print('.. broadcast fan-out', file=sys.stderr, flush=True)
        fanout = bench.broadcast.run(args.smoke)
        print(broadcast_table(fanout))
        failed = failed or not all(item.get('ok') for item in fanout)
    shakes: list[dict] = []
    if only is None or 'handshakes' in only:
        print('.. handshakes', file=sys.stderr, flush=True)
        shakes = bench.handshakes.run(args.smoke)
        print(bench.handshakes.table(shakes))
        failed = failed or not all(item['ok'] for item in shakes)
    if only is None or 'history' in only:
        print('.. group history', file=sys.stderr, flush=True)
        history = bench.history.run(args.smoke)
        print(bench.history.table(history))
        failed = failed or not all(item['ok'] for item in history)
    if only is None or 'asyncviews' in only:
        print('.. async views', file=sys.stderr, flush=True)
        views = bench.asyncviews.run(args.smoke)
        print(bench.asyncviews.table(views))
        failed = failed or not all(item['ok'] for item in views)
    soak: dict[str, typing.Any] = {}
    if only is None or 'soak' in only:
        print('.. soak', file=sys.stderr, flush=True)
        soak = bench.soak.run(args.smoke)
        print(bench.soak.table(soak))
        failed = failed or not soak['ok']
    print(f'took {time.monotonic() - started:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                {
                    'machine': machine(),
                    'results': results,
                    'fanout': fanout,
                    'handshakes': shakes,
                    'soak': soak,
                },
                f,
                indent=1,
            )
    if failed and args.smoke:
        sys.exit(1)
