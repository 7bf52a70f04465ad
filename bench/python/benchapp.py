"""The tutorial pipeline of configs/tutorial-pipeline.ini, in Python, for gunicorn --paste.

The app answers ``200``, ``Content-Type: text/plain``, ``Hello world!\\n`` (the tutorial's
``egg:minimal`` app); the filter puts ``PREFIX `` before every line of the body (the
tutorial's middleware, ``egg:minimal`` as a filter, ``prefix`` defaulting to ``Booyeah:``).
Both are PasteDeploy factories, used from tutorial-pipeline.ini beside this file through
``use = call:benchapp:app_factory`` and ``use = call:benchapp:filter_factory`` (with
``PYTHONPATH=bench/python``).
"""


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello world!\n"]


def app_factory(global_conf, **local_conf):
    return hello_app


class PrefixFilter:
    def __init__(self, app, prefix):
        self.app = app
        self.prefix = prefix.encode("utf-8") + b" "

    def __call__(self, environ, start_response):
        body = self.app(environ, start_response)
        try:
            return [
                self.prefix + line
                for chunk in body
                for line in chunk.splitlines(keepends=True)
            ]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


def filter_factory(global_conf, prefix="Booyeah:", **local_conf):
    def make_filter(app):
        return PrefixFilter(app, prefix)

    return make_filter
