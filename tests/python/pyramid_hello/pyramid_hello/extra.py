"""An include named by `pyramid.includes`, as pyramid_tm or pyramid_debugtoolbar would be."""


def includeme(config):
    config.add_route("included", "/included")
    config.add_view(
        lambda request: request.response.__class__("from an include\n", content_type="text/plain"),
        route_name="included",
    )
