"""A Pyramid app as `pcreate`/cookiecutter lays one out."""

import logging

from pyramid.config import Configurator
from pyramid.response import Response

log = logging.getLogger(__name__)


def home(request):
    log.info("hello view called for %s", request.path)
    greeting = request.registry.settings.get("hello.greeting", "Hello")
    return Response(
        "%s from Pyramid at %s (script %r)\n" % (greeting, request.path_info, request.script_name),
        content_type="text/plain",
    )


def echo(request):
    return Response(body=request.body, content_type="application/octet-stream")


def main(global_config, **settings):
    """The paste.app_factory entry point."""
    with Configurator(settings=settings) as config:
        config.add_route("home", "/")
        config.add_route("echo", "/echo")
        config.add_view(home, route_name="home")
        config.add_view(echo, route_name="echo", request_method="POST")
        return config.make_wsgi_app()
