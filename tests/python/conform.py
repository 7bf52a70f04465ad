"""A WSGI app that exercises the corners of PEP 3333, for serve's conformance tests.

Each path answers with what the server did, so the test can check it from outside:
`GET /environ` shows the environ, `/lazy` calls start_response late, and so on.
"""

import json
import os
import sys
import threading
import time

# A file the worker's exit writes to, when the environment names one (atexit runs after a drain).
if os.environ.get("CONFORM_ATEXIT"):
    import atexit

    atexit.register(lambda: open(os.environ["CONFORM_ATEXIT"], "a").write("exited %d\n" % os.getpid()))

# What close() calls the server made, by path; read back through /closed.
CLOSED = []
_lock = threading.Lock()


def app_factory(global_conf, **local_conf):
    return ConformApp(global_conf, local_conf)


def filter_factory(global_conf, **local_conf):
    """A Python filter: adds a header and tags the body."""
    tag = local_conf.get("tag", "py")

    def wrap(app):
        def filtered(environ, start_response):
            def start(status, headers, exc_info=None):
                return start_response(status, headers + [("X-Python-Filter", tag)], exc_info)

            return app(environ, start)

        return filtered

    return wrap


def composite_factory(loader, global_conf, **local_conf):
    """A Python composite: routes by the first path segment to the apps its loader (PasteDeploy's
    own ConfigLoader) makes from the names in its settings."""
    apps = {prefix.strip("/"): loader.get_app(name, global_conf=global_conf)
            for prefix, name in local_conf.items() if prefix.startswith("/")}

    def route(environ, start_response):
        path = environ["PATH_INFO"]
        first, _, rest = path.lstrip("/").partition("/")
        app = apps.get(first)
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no app under /" + first.encode("latin-1") + b"\n"]
        environ["SCRIPT_NAME"] += "/" + first
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)

    return route


class ClosingList(list):
    """A list result with close(): servers must call it too."""

    def close(self):
        with _lock:
            CLOSED.append("list")


class Closing:
    """An iterable with close(), as PEP 3333 asks servers to call."""

    def __init__(self, name, chunks):
        self.name = name
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        with _lock:
            CLOSED.append(self.name)


class ConformApp:
    def __init__(self, global_conf, local_conf):
        self.global_conf = global_conf
        self.local_conf = local_conf

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        handler = getattr(self, "do_" + (path.strip("/").replace("-", "_") or "index"), None)
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such test: " + path.encode("latin-1") + b"\n"]
        return handler(environ, start_response)

    def do_index(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"conform\n"]

    def do_environ(self, environ, start_response):
        shown = {}
        for key, value in environ.items():
            if isinstance(value, (str, bool, int)) or key == "wsgi.version":
                shown[key] = value
            else:
                shown[key] = type(value).__name__
        shown["_os_environ_leaked"] = any(k in environ for k in ("PATH", "HOME"))
        shown["_conf"] = {"global": self.global_conf, "local": self.local_conf}
        body = json.dumps(shown, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    def do_lazy(self, environ, start_response):
        # start_response only once the server iterates.
        def body():
            start_response("201 Created", [("X-Lazy", "yes"), ("Content-Type", "text/plain")])
            yield b""
            yield b"lazy body\n"

        return body()

    def do_write(self, environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"by write()")
        return [b"\n"]

    def do_readline(self, environ, start_response):
        lines = []
        while True:
            line = environ["wsgi.input"].readline()
            if not line:
                break
            lines.append(line.decode("latin-1"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(lines).encode()]

    def do_iterate(self, environ, start_response):
        lines = [line.decode("latin-1") for line in environ["wsgi.input"]]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(lines).encode()]

    def do_readlines(self, environ, start_response):
        hint = int(environ.get("QUERY_STRING") or -1)
        lines = [line.decode("latin-1") for line in environ["wsgi.input"].readlines(hint)]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(lines).encode()]

    def do_read(self, environ, start_response):
        size = int(environ.get("QUERY_STRING") or 7)
        parts = []
        while True:
            part = environ["wsgi.input"].read(size)
            if not part:
                break
            parts.append(len(part))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(parts).encode()]

    def do_echo(self, environ, start_response):
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]

    def do_close(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(environ.get("QUERY_STRING") or "close", [b"a", b"b", b"c\n"])

    def do_closed(self, environ, start_response):
        with _lock:
            names = list(CLOSED)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(names).encode()]

    def do_raise(self, environ, start_response):
        raise RuntimeError("the app failed on purpose")

    def do_raise_late(self, environ, start_response):
        def body():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first chunk\n"
            raise RuntimeError("the body failed on purpose")

        return Closing("raise-late", body())

    def do_exc_info(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Try Later", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry\n"]

    def do_twice(self, environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"not reached\n"]

    def do_list_close(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingList([b"a list ", b"that closes\n"])

    def do_twice_late(self, environ, start_response):
        def body():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"head sent\n"
            start_response("500 Too Late", [])
            yield b"not reached\n"

        return body()

    def do_not_bytes(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str, not bytes\n"]

    def do_no_start(self, environ, start_response):
        return [b"body without start_response\n"]

    def do_reason(self, environ, start_response):
        start_response("299 Custom Reason", [("Content-Type", "text/plain")])
        return [b"custom\n"]

    def do_stream(self, environ, start_response):
        count = int(environ.get("QUERY_STRING") or 64)
        chunk = b"x" * 65536

        def body():
            for _ in range(count):
                yield chunk

        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Closing("stream", body())

    def do_slow(self, environ, start_response):
        time.sleep(float(environ.get("QUERY_STRING") or 0.5))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow\n"]

    def do_cycle(self, environ, start_response):
        """Ignores its body and leaves the environ in a reference cycle (as Werkzeug's request
        object does), so only the garbage collector would free wsgi.input."""
        environ["conform.self"] = environ
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"cycle\n"]

    def do_sigint(self, environ, start_response):
        import signal

        handler = signal.getsignal(signal.SIGINT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(handler).encode()]

    def do_errors(self, environ, start_response):
        environ["wsgi.errors"].write("written to wsgi.errors\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"logged\n"]

    def do_file(self, environ, start_response):
        """A file sent with wsgi.file_wrapper, from where the app left its position."""
        path = environ.get("QUERY_STRING")
        f = open(path, "rb")
        f.seek(5)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)

    def do_file_pipe(self, environ, start_response):
        """file_wrapper over something that is not a regular file: iterated in Python."""
        import io

        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory, " * 1000), 100)

    def do_pid(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
