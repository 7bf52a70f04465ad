"""The benchmark driver behind scripts/bench.sh (run that, not this).

Measures `serve` against nginx, gunicorn and a bare hyper hello world on the same work (the
tutorial pipeline: a prefix filter in front of a hello-world app), over loopback only, every
load bounded in time. Prints the results as Markdown and writes them to target/bench/results.md
(and the raw numbers to target/bench/results.json).

Every process it starts is written to $BENCH_TMP/pids/ (`PID STARTTIME`) until it is stopped,
so that the shell script's EXIT trap can stop whatever is left, by PID.

Settings (environment): BENCH_DURATION (seconds per wrk run, 10), BENCH_RUNS (3),
BENCH_WARMUP (seconds, 1), BENCH_CONNECTIONS (50), BENCH_RELOADS (serve, 100),
BENCH_NGINX_RELOADS (100), BENCH_GUNICORN_RELOADS (20), BENCH_IDLE_CONNS (10000),
BENCH_STARTS (7), BENCH_ONLY (comma list of phases: throughput,close,reload,idle,startup,
python).

The `python` phase serves the same pipeline written in Python (bench/python/) with serve's
embedded CPython, granian and gunicorn gthread, each loading it through PasteDeploy.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.getcwd()
TMP = os.environ["BENCH_TMP"]
PIDDIR = os.path.join(TMP, "pids")


def env_int(name, default):
    return int(os.environ.get(name, default))


DURATION = env_int("BENCH_DURATION", 10)
RUNS = env_int("BENCH_RUNS", 3)
WARMUP = env_int("BENCH_WARMUP", 1)
CONNS = env_int("BENCH_CONNECTIONS", 50)
RELOADS = env_int("BENCH_RELOADS", 100)
NGINX_RELOADS = env_int("BENCH_NGINX_RELOADS", 100)
GUNICORN_RELOADS = env_int("BENCH_GUNICORN_RELOADS", 20)
IDLE_CONNS = env_int("BENCH_IDLE_CONNS", 10000)
STARTS = env_int("BENCH_STARTS", 7)
PHASES = set(
    os.environ.get("BENCH_ONLY", "throughput,close,reload,idle,startup,python").split(",")
)
WORKERS = (1, 2, 4)

SERVE = os.path.join(ROOT, "target/release/serve")
# The same serve built with the `python` feature (it links libpython, so it is kept apart from
# the build the other phases measure).
SERVE_PY = os.path.join(ROOT, "target/bench/python-build/release/serve")
HYPER = os.path.join(ROOT, "target/bench/hello_hyper/release/hello_hyper")
GUNICORN = os.path.join(ROOT, "target/bench/venv/bin/gunicorn")
GRANIAN = os.path.join(ROOT, "target/bench/venv/bin/granian")
VENV = os.path.join(ROOT, "target/bench/venv")
PY_PATH = os.path.join(ROOT, "bench/python")
NGINX = os.environ.get("BENCH_NGINX", shutil.which("nginx") or "/usr/sbin/nginx")
WRK = os.environ.get("BENCH_WRK", shutil.which("wrk") or "/usr/bin/wrk")
OUT_MD = os.path.join(ROOT, "target/bench/results.md")
OUT_JSON = os.path.join(ROOT, "target/bench/results.json")

BODY = b"yikes: Hello world!\n"
BODY2 = b"yikes2: Hello world!\n"
PIPELINE_INI = "configs/tutorial-pipeline.ini"
PY_PIPELINE_INI = "bench/python/tutorial-pipeline.ini"

STARTED = time.monotonic()


def log(message):
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def register(pid):
    start = proc_starttime(pid)
    with open(os.path.join(PIDDIR, str(pid)), "w") as f:
        f.write(f"{pid} {start}\n")
    return start


def unregister(pid):
    try:
        os.unlink(os.path.join(PIDDIR, str(pid)))
    except FileNotFoundError:
        pass


def alive(pid, start):
    return start is not None and proc_starttime(pid) == start


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def memory_kb(pid):
    """(RSS, PSS) in kB from /proc/PID/smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def nspawn_running():
    out = subprocess.run(["pgrep", "-a", "systemd-nspawn"], capture_output=True, text=True)
    return out.stdout.strip()


NEIGHBOUR = {}
PHASE = ["start"]


def note_neighbour(phase=None):
    seen = nspawn_running()
    if seen:
        NEIGHBOUR.setdefault(phase or PHASE[0], seen.splitlines()[0])


FOREIGN = {}  # phase -> [share of the machine's CPU used by processes not ours, per 2 s]


def cpu_busy_total():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def our_cpu():
    """CPU ticks of this driver and everything it started, the reaped ones included."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    ours, frontier = {os.getpid()}, [os.getpid()]
    kids = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    while frontier:
        for kid in kids.get(frontier.pop(), []):
            if kid not in ours:
                ours.add(kid)
                frontier.append(kid)
    return sum(stats[p][1] for p in ours if p in stats)


def watch_neighbour():
    """Every 2 s: how busy is the machine with work that is not ours (noise)? Is another
    helper's systemd-nspawn container test running?"""
    last = None
    while True:
        note_neighbour()
        try:
            busy, total_ticks = cpu_busy_total()
            ours = our_cpu()
            if last is not None and total_ticks > last[1]:
                foreign = max(0, (busy - last[0]) - (ours - last[2])) / (total_ticks - last[1])
                FOREIGN.setdefault(PHASE[0], []).append(foreign)
            last = (busy, total_ticks, ours)
        except (OSError, ValueError):
            last = None
        time.sleep(2)


# ---------------------------------------------------------------- HTTP client


REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def parse_response(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return 0, b""
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, b""
    chunked = any(
        line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
        for line in lines[1:]
    )
    if not chunked:
        return status, rest
    body = bytearray()
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return 0, b""
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return status, bytes(body)
        body += rest[:size]
        rest = rest[size + 2 :]


def http_get(port, timeout=3.0):
    """One request on a new connection: (status, body); raises OSError on a socket error."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        data = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return parse_response(bytes(data))


def try_get(port, timeout=3.0):
    try:
        return http_get(port, timeout)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- servers


class Server:
    """A server under test: its master process (`proc`), started and stopped by PID."""

    kind = "?"

    def __init__(self, label, workers):
        self.label = label
        self.workers = workers
        self.port = None
        self.proc = None
        self.start_time = None
        self.dir = os.path.join(TMP, label.replace("/", "_"))
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "log")
        self.log_offset = 0

    def argv(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def prepare(self):
        """Picks the port and writes the config; everything before the exec."""
        self.port = free_port()
        self.write_config(BODY)
        return self.argv()

    def write_config(self, body):
        pass

    def spawn(self, argv):
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env(),
                start_new_session=True,
            )
        finally:
            logf.close()
        self.start_time = register(self.proc.pid)

    def start(self, timeout=60):
        self.spawn(self.prepare())
        self.wait_ready(timeout)
        return self

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def fail(self, why):
        tail = "\n".join(self.log_text().splitlines()[-20:])
        raise RuntimeError(f"{self.label}: {why}\n--- log tail ---\n{tail}")

    def workers_ready(self):
        return len(children(self.proc.pid)) >= self.workers

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode} before it was ready")
            answer = try_get(self.port)
            if answer == (200, BODY) and self.workers_ready():
                time.sleep(0.3)
                answer = try_get(self.port)
                if answer != (200, BODY):
                    self.fail(f"wrong answer {answer!r}, expected 200 {BODY!r}")
                return
            if answer is not None and answer[0] != 0 and answer != (200, BODY):
                self.fail(f"wrong answer {answer!r}, expected 200 {BODY!r}")
            time.sleep(0.02)
        self.fail(f"not ready within {timeout}s")

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def memory(self):
        """[(role, pid, rss_kb, pss_kb)], master first."""
        rows = []
        for i, pid in enumerate(self.pids()):
            try:
                rss, pss = memory_kb(pid)
            except OSError:
                continue
            rows.append(("master" if i == 0 else f"worker {i - 1}", pid, rss, pss))
        return rows

    def stop_signal(self):
        return signal.SIGTERM

    def stop(self, timeout=40):
        if self.proc is None:
            return
        pid = self.proc.pid
        kids = [(k, proc_starttime(k)) for k in children(pid)]
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal())
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.label}: still running {timeout}s after {self.stop_signal()!r}: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        for kid, start in kids:
            while alive(kid, start) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(kid, start):
                log(f"{self.label}: child {kid} outlived its master: SIGKILL")
                os.kill(kid, signal.SIGKILL)
        unregister(pid)
        self.proc = None


class Serve(Server):
    kind = "serve"

    def __init__(self, workers, config=PIPELINE_INI, label=None):
        super().__init__(label or f"serve-{workers}", workers)
        self.config = config

    def argv(self):
        return [
            SERVE,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            self.config,
        ]

    def workers_ready(self):
        return "ready: generation 1," in self.log_text()


class Nginx(Server):
    kind = "nginx"

    def __init__(self, workers, label=None, keepalive_timeout="75s", worker_connections=1024):
        super().__init__(label or f"nginx-{workers}", workers)
        self.keepalive_timeout = keepalive_timeout
        self.worker_connections = worker_connections
        self.conf = os.path.join(self.dir, "nginx.conf")

    def write_config(self, body):
        text = body.decode().replace("\n", "\\n")
        config = f"""# written by bench/bench.py
daemon off;
master_process on;
worker_processes {self.workers};
worker_rlimit_nofile {self.worker_connections * 2 + 100};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{
    worker_connections {self.worker_connections};
}}
http {{
    access_log off;
    keepalive_timeout {self.keepalive_timeout};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            default_type text/plain;
            return 200 "{text}";
        }}
    }}
}}
"""
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(config)
        os.replace(tmp, self.conf)

    def argv(self):
        return [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.dir + "/error.log"]

    def log_text(self):
        text = super().log_text()
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                text += f.read()
        except OSError:
            pass
        return text

    def stop_signal(self):
        return signal.SIGQUIT  # graceful shutdown; TERM is nginx's fast one


class PythonFixture(Server):
    """A server of the pipeline in Python: it imports bench/python (benchapp, granian_app)."""

    def env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = PY_PATH
        return env


class Gunicorn(PythonFixture):
    kind = "gunicorn"

    def __init__(self, workers, worker_class, label=None, ini=PY_PIPELINE_INI):
        super().__init__(label or f"gunicorn-{worker_class}-{workers}", workers)
        self.worker_class = worker_class
        self.ini = ini

    def argv(self):
        argv = [
            GUNICORN,
            "--paste",
            self.ini,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
        ]
        if self.worker_class == "gthread":
            argv += ["--threads", "4"]
        return argv


class ServePython(PythonFixture):
    """serve with the Python pipeline, one Python thread per worker (the default)."""

    kind = "serve"

    def __init__(self, workers, label=None):
        super().__init__(label or f"serve-py-{workers}", workers)

    def argv(self):
        return [
            SERVE_PY,
            "--python",
            VENV,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            PY_PIPELINE_INI,
        ]

    def workers_ready(self):
        return "ready: generation 1," in self.log_text()


class Granian(PythonFixture):
    """granian's WSGI interface on the same pipeline, loaded by PasteDeploy (granian_app.py)."""

    kind = "granian"

    def __init__(self, workers, label=None):
        super().__init__(label or f"granian-{workers}", workers)

    def argv(self):
        return [
            GRANIAN,
            "--interface",
            "wsgi",
            "--workers",
            str(self.workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "granian_app:app",
        ]

    def stop_signal(self):
        return signal.SIGINT  # granian's graceful stop


class Hyper(Server):
    kind = "hello_hyper"

    def __init__(self, threads=None, label=None):
        super().__init__(label or "hello_hyper", threads or os.cpu_count())
        self.threads = threads

    def argv(self):
        argv = [HYPER, f"127.0.0.1:{self.port}"]
        if self.threads:
            argv.append(str(self.threads))
        return argv

    def workers_ready(self):
        return True


# ---------------------------------------------------------------- wrk


def wrk_argv(port, duration, close=False):
    argv = [WRK, "-t1", f"-c{CONNS}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [f"http://127.0.0.1:{port}/"]


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out):
    result = {"rps": None, "p50": None, "p75": None, "p90": None, "p99": None}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        result["rps"] = float(m.group(1))
    for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        result["p" + m.group(1)] = to_ms(m.group(2), m.group(3))
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = dict(
        zip(("connect", "read", "write", "timeout"), map(int, m.groups()) if m else (0, 0, 0, 0))
    )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = int(m.group(1)) if m else 0
    if result["rps"] is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return result


def wrk(port, duration, close=False):
    out = subprocess.run(
        wrk_argv(port, duration, close),
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    return parse_wrk(out.stdout)


class WrkInBackground:
    """wrk for at most `limit` seconds, stopped early with SIGINT (it then prints its stats)."""

    def __init__(self, port, limit):
        self.limit = limit
        self.proc = subprocess.Popen(
            wrk_argv(port, limit),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        register(self.proc.pid)

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self):
        out, _ = self.proc.communicate(timeout=self.limit + 60)
        unregister(self.proc.pid)
        return parse_wrk(out)


# ---------------------------------------------------------------- statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def spread(values, digits=2, thousands=False):
    """'median [min–max]'."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"

    def f(v):
        return f"{v:,.0f}" if thousands else f"{v:.{digits}f}"

    if len(values) == 1:
        return f(values[0])
    return f"{f(statistics.median(values))} [{f(min(values))}–{f(max(values))}]"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}x"


def mib(kb):
    return f"{kb / 1024:.1f}"


# ---------------------------------------------------------------- phases


RESULTS = {
    "settings": {
        "duration": DURATION,
        "runs": RUNS,
        "warmup": WARMUP,
        "connections": CONNS,
        "reloads": {"serve": RELOADS, "nginx": NGINX_RELOADS, "gunicorn": GUNICORN_RELOADS},
        "idle_conns": IDLE_CONNS,
        "starts": STARTS,
    },
    "keepalive": {},
    "close": {},
    "memory": {},
    "reload": {},
    "idle": {},
    "startup": {},
    "spread": {},
    "python": {},
}


def throughput_servers():
    servers = {}
    for n in WORKERS:
        servers[f"serve-{n}"] = Serve(n)
    for n in WORKERS:
        servers[f"nginx-{n}"] = Nginx(n)
    for n in WORKERS:
        servers[f"gunicorn-sync-{n}"] = Gunicorn(n, "sync")
    for n in WORKERS:
        servers[f"gunicorn-gthread-{n}"] = Gunicorn(n, "gthread")
    servers["hello_hyper"] = Hyper()
    return servers


def phase_throughput(running):
    servers = throughput_servers()
    for key, server in servers.items():
        log(f"starting {key}")
        server.start()
        running.append(server)
        RESULTS["memory"].setdefault(key, {})["idle"] = server.memory()
    idle_fds = {key: {pid: fd_count(pid) for pid in s.pids()} for key, s in servers.items()}
    PHASE[0] = "throughput"
    if WARMUP:
        for key, server in servers.items():
            log(f"warm-up {key} ({WARMUP}s)")
            wrk(server.port, WARMUP)
    order = list(servers)
    if "throughput" in PHASES:
        for run in range(RUNS):
            # Interleaved: a neighbour's noise spreads over every server alike.
            for key in order:
                if run == RUNS - 1 and key.startswith(("serve-", "nginx-")):
                    # The last run also samples how wrk's connections spread over the workers.
                    background = WrkInBackground(servers[key].port, DURATION)
                    time.sleep(DURATION / 2)
                    RESULTS["spread"][key] = [
                        fd_count(pid) - n
                        for pid, n in idle_fds[key].items()
                        if pid != servers[key].proc.pid
                    ]
                    r = background.wait()
                else:
                    r = wrk(servers[key].port, DURATION)
                RESULTS["keepalive"].setdefault(key, []).append(r)
                if run == RUNS - 1:
                    RESULTS["memory"][key]["after"] = servers[key].memory()
                log(
                    f"keep-alive run {run + 1}/{RUNS} {key}: {r['rps']:,.0f} req/s, "
                    f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms"
                )
    if "close" in PHASES:
        PHASE[0] = "close"
        close_keys = ["serve-4", "nginx-4", "gunicorn-sync-4", "gunicorn-gthread-4", "hello_hyper"]
        for run in range(RUNS):
            for key in close_keys:
                r = wrk(servers[key].port, DURATION, close=True)
                RESULTS["close"].setdefault(key, []).append(r)
                log(
                    f"Connection: close run {run + 1}/{RUNS} {key}: {r['rps']:,.0f} req/s, "
                    f"p99 {r['p99']:.2f} ms, errors {r['socket_errors']}"
                )
    for server in servers.values():
        server.stop()
        running.remove(server)


def python_servers():
    servers = {}
    for n in WORKERS:
        servers[f"serve-py-{n}"] = ServePython(n)
    for n in WORKERS:
        servers[f"granian-{n}"] = Granian(n)
    for n in WORKERS:
        servers[f"gunicorn-gthread-py-{n}"] = Gunicorn(n, "gthread", label=f"gunicorn-gthread-py-{n}")
    return servers


def phase_python(running):
    """The Python pipeline: serve's embedded CPython against granian and gunicorn gthread."""
    servers = python_servers()
    for key, server in servers.items():
        log(f"starting {key}")
        server.start()
        running.append(server)
        RESULTS["memory"].setdefault(key, {})["idle"] = server.memory()
    PHASE[0] = "python"
    if WARMUP:
        for key, server in servers.items():
            log(f"warm-up {key} ({WARMUP}s)")
            wrk(server.port, WARMUP)
    for run in range(RUNS):
        for key, server in servers.items():
            r = wrk(server.port, DURATION)
            RESULTS["python"].setdefault(key, []).append(r)
            if run == RUNS - 1:
                RESULTS["memory"][key]["after"] = server.memory()
            log(
                f"python run {run + 1}/{RUNS} {key}: {r['rps']:,.0f} req/s, "
                f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms"
            )
    for server in servers.values():
        server.stop()
        running.remove(server)


def worker_rss(key, when="after"):
    """The median RSS of a server's worker processes (its master left out), in KiB."""
    rows = RESULTS["memory"].get(key, {}).get(when) or []
    workers = [r[2] for r in rows if r[0] != "master"]
    return median(workers) if workers else None


class Reloadable:
    """How to change the body of a running server and tell when its reload is over."""

    def __init__(self, server):
        self.server = server

    def before(self):
        pass

    def trigger(self, body):
        raise NotImplementedError

    def done(self):
        raise NotImplementedError


class ServeReload(Reloadable):
    def __init__(self, server, config_path):
        super().__init__(server)
        self.config_path = config_path
        with open(os.path.join(ROOT, PIPELINE_INI)) as f:
            self.template = f.read()
        self.failed = 0
        self.took_ms = []

    def write(self, body):
        prefix = body.split(b" ", 1)[0].decode()
        text = self.template.replace("prefix = yikes:", f"prefix = {prefix}")
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def reloads_logged(self):
        text = self.server.log_text()
        return (
            text.count("reloaded: generation"),
            len(re.findall(r"reload (to generation \d+ )?failed", text)),
        )

    def before(self):
        self.seen = self.reloads_logged()

    def trigger(self, body):
        self.write(body)
        os.kill(self.server.proc.pid, signal.SIGHUP)

    def done(self):
        ok, failed = self.reloads_logged()
        if failed > self.seen[1]:
            self.failed += 1
            return True
        if ok > self.seen[0]:
            m = re.findall(r"reloaded: generation \d+ -> \d+ in ([\d.]+)(µs|us|ms|s)", self.server.log_text())
            if m:
                value, unit = m[-1]
                self.took_ms.append(to_ms(value, "us" if unit == "µs" else unit))
            return True
        return False


class MasterReload(Reloadable):
    """nginx and gunicorn: HUP to the master, over when only new workers are left."""

    def __init__(self, server, rewrite):
        super().__init__(server)
        self.rewrite = rewrite
        self.failed = 0

    def before(self):
        self.old = set(children(self.server.proc.pid))

    def trigger(self, body):
        self.rewrite(body)
        os.kill(self.server.proc.pid, signal.SIGHUP)

    def done(self):
        now = set(children(self.server.proc.pid))
        return not (now & self.old) and len(now) >= self.server.workers


def poll_until_wrk_ends(port, background):
    polls = errors = 0
    while background.running():
        answer = try_get(port)
        polls += 1
        if answer is None or answer[0] != 200:
            errors += 1
    return polls, errors


def reload_run(name, server, reloadable, count):
    """Steady wrk window, then a wrk window with `count` reloads; returns the numbers."""
    port = server.port
    log(f"reload: {name} steady window ({DURATION}s, wrk + the polling client)")
    background = WrkInBackground(port, DURATION)
    steady_polls, steady_poll_errors = poll_until_wrk_ends(port, background)
    steady = background.stop()
    log(f"reload: {name} steady p99 {steady['p99']:.2f} ms; {count} reloads under load")

    limit = min(600, 30 + count * 15)
    background = WrkInBackground(port, limit)
    time.sleep(0.5)
    to_new_body, to_done, poll_errors, timeouts = [], [], 0, 0
    bodies = [BODY2, BODY]
    started = time.monotonic()
    for i in range(count):
        if not background.running():
            log(f"reload: {name}: wrk ended after {i} reloads (its {limit}s bound)")
            break
        new = bodies[i % 2]
        reloadable.before()
        t0 = time.perf_counter()
        reloadable.trigger(new)
        seen = done = None
        last_done_check = 0.0
        while seen is None or done is None:
            now = time.perf_counter()
            if now - t0 > 15:
                timeouts += 1
                log(f"reload: {name} #{i + 1}: no new body or no completion within 15s")
                break
            if seen is None:
                answer = try_get(port)
                if answer is None or answer[0] != 200:
                    poll_errors += 1
                elif answer[1] == new:
                    seen = time.perf_counter() - t0
            if done is None and (seen is not None or now - last_done_check > 0.005):
                last_done_check = now
                if reloadable.done():
                    done = time.perf_counter() - t0
            if seen is not None and done is None:
                time.sleep(0.001)
        if seen is not None:
            to_new_body.append(seen * 1000)
        if done is not None:
            to_done.append(done * 1000)
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    during = background.stop()
    failed = getattr(reloadable, "failed", 0) + timeouts
    result = {
        "reloads": len(to_new_body) + timeouts,
        "window_s": elapsed,
        "to_new_body_ms": to_new_body,
        "to_done_ms": to_done,
        "failed": failed,
        "poll_errors": poll_errors,
        "steady": steady,
        "steady_polls": steady_polls,
        "steady_poll_errors": steady_poll_errors,
        "during": during,
    }
    if isinstance(reloadable, ServeReload):
        result["serve_logged_ms"] = reloadable.took_ms
    log(
        f"reload: {name}: {result['reloads']} reloads in {elapsed:.1f}s, new body after "
        f"{median(to_new_body) or 0:.1f} ms (median), failed {failed}, "
        f"wrk non-2xx {during['non2xx']}, socket errors {during['socket_errors']}, "
        f"p99 {during['p99']:.2f} ms (steady {steady['p99']:.2f})"
    )
    return result


def phase_reload(running):
    PHASE[0] = "reload"
    # serve
    config = os.path.join(TMP, "reload-serve.ini")
    server = Serve(4, config=config, label="reload-serve")
    reloadable = ServeReload(server, config)
    reloadable.write(BODY)
    server.start()
    running.append(server)
    RESULTS["reload"]["serve-4"] = reload_run("serve-4", server, reloadable, RELOADS)
    server.stop()
    running.remove(server)

    # nginx
    server = Nginx(4, label="reload-nginx")
    server.start()
    running.append(server)
    reloadable = MasterReload(server, server.write_config)
    RESULTS["reload"]["nginx-4"] = reload_run("nginx-4", server, reloadable, NGINX_RELOADS)
    server.stop()
    running.remove(server)

    # gunicorn gthread
    ini = os.path.join(TMP, "reload-gunicorn.ini")
    with open(os.path.join(ROOT, PY_PIPELINE_INI)) as f:
        template = f.read()

    def write_ini(body):
        prefix = body.split(b" ", 1)[0].decode()
        tmp = ini + ".tmp"
        with open(tmp, "w") as f:
            f.write(template.replace("prefix = yikes:", f"prefix = {prefix}"))
        os.replace(tmp, ini)

    write_ini(BODY)
    server = Gunicorn(4, "gthread", label="reload-gunicorn", ini=ini)
    server.start()
    running.append(server)
    reloadable = MasterReload(server, write_ini)
    RESULTS["reload"]["gunicorn-gthread-4"] = reload_run(
        "gunicorn-gthread-4", server, reloadable, GUNICORN_RELOADS
    )
    server.stop()
    running.remove(server)


def phase_idle(running):
    PHASE[0] = "idle"
    config = os.path.join(TMP, "keepalive-serve.ini")
    with open(os.path.join(ROOT, PIPELINE_INI)) as f:
        text = f.read()
    # Idle connections stay open for the shorter of keepalive and header_timeout.
    text = text.replace("[server:main]\n", "[server:main]\nkeepalive = 300\nheader_timeout = 300\n")
    with open(config, "w") as f:
        f.write(text)
    candidates = [
        ("serve-4", lambda: Serve(4, config=config, label="idle-serve")),
        (
            "nginx-4",
            lambda: Nginx(
                4, label="idle-nginx", keepalive_timeout="300s", worker_connections=IDLE_CONNS + 1000
            ),
        ),
        ("hello_hyper", lambda: Hyper(label="idle-hyper")),
    ]
    for key, make in candidates:
        server = make()
        server.start()
        running.append(server)
        time.sleep(0.5)
        before = server.memory()
        fds_before = {pid: fd_count(pid) for pid in server.pids()}
        log(f"idle: {key}: opening {IDLE_CONNS} keep-alive connections")
        client = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench/idle_conns.py"), str(server.port), str(IDLE_CONNS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        register(client.pid)
        try:
            line = client.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError(f"idle_conns.py did not get ready: {line}")
            opened, errors = int(line[1]), int(line[2])
            time.sleep(1.0)
            after = server.memory()
            fds_after = {pid: fd_count(pid) for pid in server.pids()}
            client.stdin.write("check\n")
            client.stdin.flush()
            still_open = int(client.stdout.readline().split()[1])
        finally:
            try:
                client.stdin.close()
            except OSError:
                pass
            try:
                client.wait(30)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
            unregister(client.pid)
        pss_before = sum(r[3] for r in before)
        pss_after = sum(r[3] for r in after)
        rss_before = sum(r[2] for r in before)
        rss_after = sum(r[2] for r in after)
        per_worker_conns = [fds_after.get(pid, 0) - fds_before.get(pid, 0) for pid in sorted(fds_after)]
        RESULTS["idle"][key] = {
            "opened": opened,
            "errors": errors,
            "still_open": still_open,
            "pss_before_kb": pss_before,
            "pss_after_kb": pss_after,
            "rss_before_kb": rss_before,
            "rss_after_kb": rss_after,
            "per_conn_pss_bytes": (pss_after - pss_before) * 1024 / max(1, still_open),
            "fds_added_per_process": per_worker_conns,
        }
        log(
            f"idle: {key}: {opened} opened ({errors} errors), {still_open} still open, "
            f"PSS {mib(pss_before)} -> {mib(pss_after)} MiB, "
            f"{RESULTS['idle'][key]['per_conn_pss_bytes'] / 1024:.2f} KiB per connection; "
            f"new fds per process {per_worker_conns}"
        )
        server.stop()
        running.remove(server)


def phase_startup(running):
    PHASE[0] = "startup"
    makers = [
        ("serve-4", lambda: Serve(4, label="start-serve")),
        ("nginx-4", lambda: Nginx(4, label="start-nginx")),
        ("gunicorn-gthread-4", lambda: Gunicorn(4, "gthread", label="start-gunicorn")),
        ("hello_hyper", lambda: Hyper(label="start-hyper")),
    ]
    for key, make in makers:
        times = []
        for _ in range(STARTS):
            server = make()
            argv = server.prepare()
            port = server.port
            t0 = time.perf_counter()
            server.spawn(argv)
            running.append(server)
            while True:
                answer = try_get(port)
                if answer == (200, BODY):
                    times.append((time.perf_counter() - t0) * 1000)
                    break
                if server.proc.poll() is not None:
                    server.fail("exited before answering")
                if time.perf_counter() - t0 > 30:
                    server.fail("no answer within 30s")
            # Let it finish starting (the other workers) before it is stopped.
            server.wait_ready()
            server.stop()
            running.remove(server)
        RESULTS["startup"][key] = times
        log(f"startup: {key}: first answer after {spread(times, 1)} ms")


# ---------------------------------------------------------------- report


def versions():
    def run(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout + out.stderr).strip()
        except OSError:
            return "?"

    model = "?"
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    nginx = run([NGINX, "-v"]).replace("nginx version: ", "").replace("nginx/", "")
    wrk_v = run([WRK, "--version"]).splitlines()[0].split(" [")[0]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "rustc": run(["rustc", "--version"]),
        "serve": run([SERVE, "--version"]),
        "nginx": nginx,
        "gunicorn": run([GUNICORN, "--version"]).replace("(version ", "").rstrip(")"),
        "granian": run([GRANIAN, "--version"]) if os.path.exists(GRANIAN) else "–",
        "wrk": wrk_v,
        "python": platform.python_version(),
    }


def rps_of(key, table="keepalive"):
    return median([r["rps"] for r in RESULTS[table].get(key, [])])


def p99_of(key, table="keepalive"):
    return median([r["p99"] for r in RESULTS[table].get(key, [])])


def total(rows, index):
    return sum(r[index] for r in rows) if rows else None


def report():
    v = RESULTS["versions"]
    lines = []
    add = lines.append
    add(f"### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    add("")
    add(
        f"{v['cpu']}, {v['cores']} cores, Linux {v['kernel']}; {v['serve']} ({v['rustc']}), "
        f"nginx {v['nginx']}, {v['gunicorn']} (Python {v['python']}), "
        f"{v.get('granian', 'granian –')}, {v['wrk']}."
    )
    add(
        f"wrk -t1 -c{CONNS} -d{DURATION}s --latency, {RUNS} runs per cell (interleaved across "
        f"servers, {WARMUP}s warm-up each): median [min–max]. Total wall time "
        f"{RESULTS['wall_s'] / 60:.1f} min."
    )
    if FOREIGN:
        add(
            "CPU used by other processes on the machine (not this benchmark), share of both cores, "
            "median [max] per phase: "
            + "; ".join(
                f"{phase} {100 * median(v):.0f}% [{100 * max(v):.0f}%]"
                for phase, v in FOREIGN.items()
                if phase not in ("start", "end")
            )
            + "."
        )
    if NEIGHBOUR:
        add(
            f"**Noisy:** a systemd-nspawn container was running during: {', '.join(sorted(NEIGHBOUR))} "
            f"(`{next(iter(NEIGHBOUR.values()))}`), competing for the 2 cores."
        )
    else:
        add("No systemd-nspawn container was seen running during the run.")
    add("")

    ka = RESULTS["keepalive"]
    if ka:
        add("#### Keep-alive throughput and latency")
        add("")
        add("| server | workers | req/s | p50 ms | p99 ms |")
        add("|---|---|---|---|---|")
        names = [
            ("serve", "serve-{}"),
            ("nginx", "nginx-{}"),
            ("gunicorn sync", "gunicorn-sync-{}"),
            ("gunicorn gthread (4 threads)", "gunicorn-gthread-{}"),
        ]
        for title, pattern in names:
            for n in WORKERS:
                runs = ka.get(pattern.format(n), [])
                add(
                    f"| {title} | {n} | {spread([r['rps'] for r in runs], thousands=True)} | "
                    f"{spread([r['p50'] for r in runs])} | {spread([r['p99'] for r in runs])} |"
                )
        runs = ka.get("hello_hyper", [])
        add(
            f"| hello_hyper | {os.cpu_count()} threads | {spread([r['rps'] for r in runs], thousands=True)} | "
            f"{spread([r['p50'] for r in runs])} | {spread([r['p99'] for r in runs])} |"
        )
        add("")
        add("#### Ratios (medians; hyper = hello_hyper, one process, a thread per core)")
        add("")
        add("| serve workers | serve/nginx | serve/hyper | serve/gunicorn-gthread | serve/gunicorn-sync | p99 serve/nginx |")
        add("|---|---|---|---|---|---|")
        for n in WORKERS:
            s = rps_of(f"serve-{n}")
            add(
                f"| {n} | {fmt_ratio(ratio(s, rps_of(f'nginx-{n}')))} | "
                f"{fmt_ratio(ratio(s, rps_of('hello_hyper')))} | "
                f"{fmt_ratio(ratio(s, rps_of(f'gunicorn-gthread-{n}')))} | "
                f"{fmt_ratio(ratio(s, rps_of(f'gunicorn-sync-{n}')))} | "
                f"{fmt_ratio(ratio(p99_of(f'serve-{n}'), p99_of(f'nginx-{n}')))} |"
            )
        add("")
        if RESULTS["spread"]:
            add(
                "wrk's connections per worker process, sampled mid-run (last run; open descriptors "
                "minus those at idle): "
                + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in RESULTS["spread"].items())
                + "."
            )
            add("")

    cl = RESULTS["close"]
    if cl:
        add("#### `Connection: close` (a new connection per request), 4 workers")
        add("")
        add("| server | req/s | p50 ms | p99 ms | socket errors (max of runs) | serve/this |")
        add("|---|---|---|---|---|---|")
        s = rps_of("serve-4", "close")
        for key, runs in cl.items():
            errs = max(sum(r["socket_errors"].values()) for r in runs)
            add(
                f"| {key} | {spread([r['rps'] for r in runs], thousands=True)} | "
                f"{spread([r['p50'] for r in runs])} | {spread([r['p99'] for r in runs])} | {errs} | "
                f"{fmt_ratio(ratio(s, rps_of(key, 'close')))} |"
            )
        add("")

    rl = RESULTS["reload"]
    if rl:
        add("#### Reload under load (4 workers, wrk keep-alive load + a client polling on new connections)")
        add("")
        add(
            "| server | reloads | failed | signal → new body ms, median [p90, max] | "
            "signal → reload done ms, median | wrk non-2xx | wrk socket errors | poll errors | "
            "p99 steady ms | p99 during reloads ms | p99 ratio | req/s steady → during |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for key, r in rl.items():
            nb = r["to_new_body_ms"]
            se = r["during"]["socket_errors"]
            err_text = ", ".join(f"{k} {n}" for k, n in se.items() if n) or "0"
            add(
                f"| {key} | {r['reloads']} in {r['window_s']:.1f}s | {r['failed']} | "
                f"{median(nb) or 0:.1f} [{percentile(nb, 90) or 0:.1f}, {max(nb) if nb else 0:.1f}] | "
                f"{median(r['to_done_ms']) or 0:.1f} | {r['during']['non2xx']} | {err_text} | "
                f"{r['poll_errors']} | {r['steady']['p99']:.2f} | {r['during']['p99']:.2f} | "
                f"{fmt_ratio(ratio(r['during']['p99'], r['steady']['p99']))} | "
                f"{r['steady']['rps']:,.0f} → {r['during']['rps']:,.0f} |"
            )
        if "serve-4" in rl and rl["serve-4"].get("serve_logged_ms"):
            add("")
            add(
                f"serve's own `reloaded: ... in T` (SIGHUP to all new workers ready): median "
                f"{median(rl['serve-4']['serve_logged_ms']):.1f} ms."
            )
        add("")

    mem = RESULTS["memory"]
    if mem.get("serve-4"):
        add("#### Memory (MiB, from /proc/PID/smaps_rollup): idle (after start) and right after load")
        add("")
        add("| serve --workers 4 | RSS idle | PSS idle | RSS after load | PSS after load |")
        add("|---|---|---|---|---|")
        idle = mem["serve-4"].get("idle", [])
        after = {r[1]: r for r in mem["serve-4"].get("after", [])}
        for role, pid, rss, pss in idle:
            a = after.get(pid)
            role = "supervisor" if role == "master" else role
            add(
                f"| {role} | {mib(rss)} | {mib(pss)} | {mib(a[2]) if a else '–'} | {mib(a[3]) if a else '–'} |"
            )
        add("")
        add("| total, 4 workers | processes | RSS idle | PSS idle | RSS after load | PSS after load |")
        add("|---|---|---|---|---|---|")
        for key in ["serve-4", "nginx-4", "gunicorn-sync-4", "gunicorn-gthread-4", "hello_hyper", "serve-1", "nginx-1"]:
            m = mem.get(key)
            if not m:
                continue
            i, a = m.get("idle", []), m.get("after", [])
            add(
                f"| {key} | {len(i)} | {mib(total(i, 2))} | {mib(total(i, 3))} | "
                f"{mib(total(a, 2)) if a else '–'} | {mib(total(a, 3)) if a else '–'} |"
            )
        add("")

    idle = RESULTS["idle"]
    if idle:
        add(f"#### Idle keep-alive connections ({IDLE_CONNS} opened, one request each, then held idle)")
        add("")
        add("| server | still open | PSS before MiB | PSS after MiB | PSS per connection KiB | RSS per connection KiB | new fds per process |")
        add("|---|---|---|---|---|---|---|")
        for key, r in idle.items():
            rss_per = (r["rss_after_kb"] - r["rss_before_kb"]) / max(1, r["still_open"])
            add(
                f"| {key} | {r['still_open']} of {r['opened']} | {mib(r['pss_before_kb'])} | "
                f"{mib(r['pss_after_kb'])} | {r['per_conn_pss_bytes'] / 1024:.2f} | {rss_per:.2f} | "
                f"{' '.join(map(str, r['fds_added_per_process']))} |"
            )
        if "nginx-4" in idle and RESULTS["memory"].get("nginx-4", {}).get("idle"):
            small = total(RESULTS["memory"]["nginx-4"]["idle"], 3)
            slots = 4 * (IDLE_CONNS + 1000 - 1024)
            add("")
            add(
                f"nginx allocates its connection structures for all `worker_connections` "
                f"({IDLE_CONNS + 1000} per worker here, 1024 elsewhere) at start, so they are in its "
                f"'before' figure, not in the difference: {mib(idle['nginx-4']['pss_before_kb'])} MiB "
                f"PSS against {mib(small)} MiB with 1024, about "
                f"{(idle['nginx-4']['pss_before_kb'] - small) * 1024 / slots:.0f} bytes per slot. "
                f"Kernel socket buffers are in no process's PSS."
            )
        add("")

    st = RESULTS["startup"]
    if st:
        add("#### Time from exec to the first answered request (tight connect+GET loop)")
        add("")
        add("| server | starts | ms, median [min–max] |")
        add("|---|---|---|")
        for key, times in st.items():
            add(f"| {key} | {len(times)} | {spread(times, 1)} |")
        add("")

    py = RESULTS["python"]
    if py:
        add("#### The pipeline in Python (WSGI, loaded by PasteDeploy)")
        add("")
        add(
            "serve runs `bench/python/tutorial-pipeline.ini` itself (`--python target/bench/venv`, "
            "one Python thread per worker); granian 2.8.7 `--interface wsgi` runs "
            "`bench/python/granian_app.py` (the same file through `loadapp`); gunicorn gthread "
            "`--paste` the same file with 4 threads. RSS per worker: the median over a server's "
            "worker processes after load (master or supervisor left out)."
        )
        add("")
        add("| server | workers | req/s | p50 ms | p99 ms | RSS per worker MiB | serve/this req/s |")
        add("|---|---|---|---|---|---|---|")
        for title, pattern in (
            ("serve", "serve-py-{}"),
            ("granian", "granian-{}"),
            ("gunicorn gthread (4 threads)", "gunicorn-gthread-py-{}"),
        ):
            for n in WORKERS:
                key = pattern.format(n)
                runs = py.get(key)
                if not runs:
                    continue
                rss = worker_rss(key)
                add(
                    f"| {title} | {n} | {spread([r['rps'] for r in runs], 0, True)} | "
                    f"{spread([r['p50'] for r in runs])} | {spread([r['p99'] for r in runs])} | "
                    f"{mib(rss) if rss else '–'} | "
                    f"{fmt_ratio(ratio(rps_of(f'serve-py-{n}', 'python'), rps_of(key, 'python')))} |"
                )
        add("")

    add("#### Targets (serve, 4 workers)")
    add("")
    add("| target | measured | met |")
    add("|---|---|---|")

    def target(name, value, ok):
        add(f"| {name} | {value} | {'–' if ok is None else ('yes' if ok else '**no**')} |")

    def check(r, limit, op):
        return None if r is None else op(r, limit)

    ge = lambda a, b: a >= b  # noqa: E731
    le = lambda a, b: a <= b  # noqa: E731
    if ka:
        r = ratio(rps_of("serve-4"), rps_of("nginx-4"))
        target("≥ 1.2x nginx req/s", fmt_ratio(r), check(r, 1.2, ge))
        r = ratio(rps_of("serve-4"), rps_of("hello_hyper"))
        target("≥ 0.9x bare hyper req/s", fmt_ratio(r), check(r, 0.9, ge))
        a, b = p99_of("serve-4"), p99_of("nginx-4")
        target("p99 ≤ nginx's", f"{a:.2f} vs {b:.2f} ms", check(a, b, le))
        r = ratio(rps_of("serve-4"), rps_of("gunicorn-gthread-4"))
        target("≥ 10x gunicorn gthread req/s", fmt_ratio(r), check(r, 10, ge))
    if "serve-4" in rl:
        r = rl["serve-4"]
        bad = r["failed"] + r["during"]["non2xx"] + sum(r["during"]["socket_errors"].values()) + r["poll_errors"]
        target(
            f"0 failed in {RELOADS} reloads",
            f"{r['failed']} failed reloads, {r['during']['non2xx']} non-2xx, "
            f"{sum(r['during']['socket_errors'].values())} socket errors, {r['poll_errors']} poll errors",
            bad == 0 and r["reloads"] >= RELOADS,
        )
        q = ratio(r["during"]["p99"], r["steady"]["p99"])
        target("p99 during reloads ≤ 2x steady", fmt_ratio(q), check(q, 2, le))
        m = median(r["to_new_body_ms"])
        target("new config answers ≤ 100 ms after SIGHUP (median)", f"{m:.1f} ms" if m else "–", check(m, 100, le))
    if mem.get("serve-4", {}).get("idle") and mem.get("nginx-4", {}).get("idle"):
        a, b = total(mem["serve-4"]["idle"], 2), total(mem["nginx-4"]["idle"], 2)
        target("supervisor + 4 idle workers RSS < nginx 4-worker RSS", f"{mib(a)} vs {mib(b)} MiB", a < b)
    if st.get("serve-4"):
        m = median(st["serve-4"])
        target("first answer ≤ 50 ms after exec (median)", f"{m:.1f} ms", m <= 50)
    if py.get("serve-py-4") and py.get("granian-4"):
        r = ratio(rps_of("serve-py-4", "python"), rps_of("granian-4", "python"))
        target("Python pipeline: ≥ 1.3x granian req/s", fmt_ratio(r), check(r, 1.3, ge))
        a, b = p99_of("serve-py-4", "python"), p99_of("granian-4", "python")
        target("Python pipeline: p99 below granian's", f"{a:.2f} vs {b:.2f} ms", a < b)
        a, b = worker_rss("serve-py-4"), worker_rss("granian-4")
        if a and b:
            target("Python pipeline: RSS per worker below granian's", f"{mib(a)} vs {mib(b)} MiB", a < b)
    add("")
    return "\n".join(lines)


def main():
    os.makedirs(os.path.dirname(OUT_MD), exist_ok=True)
    RESULTS["versions"] = versions()
    threading.Thread(target=watch_neighbour, daemon=True).start()
    running = []
    try:
        if PHASES & {"throughput", "close"}:
            phase_throughput(running)
        if "reload" in PHASES:
            phase_reload(running)
        if "idle" in PHASES:
            phase_idle(running)
        if "startup" in PHASES:
            phase_startup(running)
        if "python" in PHASES:
            phase_python(running)
    finally:
        for server in reversed(running):
            try:
                server.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {server.label}: {e!r}")
    PHASE[0] = "end"
    note_neighbour()
    RESULTS["wall_s"] = time.monotonic() - STARTED
    RESULTS["neighbour"] = NEIGHBOUR
    RESULTS["foreign_cpu"] = FOREIGN
    markdown = report()
    with open(OUT_MD, "w") as f:
        f.write(markdown + "\n")
    with open(OUT_JSON, "w") as f:
        json.dump(RESULTS, f, indent=1)
    print(markdown)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
