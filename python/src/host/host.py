"""serve's Python side in a worker: WSGI apps from plan nodes, made by PasteDeploy itself.

A plan node carries what serve's loader resolved, exactly as PasteDeploy resolves it (the entry
point or `module:attr`, the protocol, `global_conf` and `local_conf`). Each factory is found
by PasteDeploy's own loaders (`EggLoader.find_egg_entry_point`, `lookup_object`) and called
through `LoaderContext.create()`, so it receives what PasteDeploy would pass; a composite gets
a real `ConfigLoader` on its own file, so the apps it asks for are loaded by PasteDeploy too.
"""

import configparser
import json
import logging.config
import os

from paste.deploy import loadwsgi

_COMPOSITES = ("paste.composite_factory", "paste.composit_factory")


def _context(node, object_type):
    protocol = node["protocol"]
    global_conf = dict(node.get("global_conf", {}))
    local_conf = dict(node.get("local_conf", {}))
    call = node.get("call")
    if call is not None:
        obj = loadwsgi.lookup_object(call)
        loader, distribution, entry_point_name = None, None, None
    else:
        dist, _, name = node["egg"].partition("#")
        loader = loadwsgi.EggLoader(dist)
        obj, found, entry_point_name = loader.find_egg_entry_point(object_type, name=name)
        if found != protocol and {found, protocol} != set(_COMPOSITES):
            raise LookupError(
                "entry point %r of %r is a %s, not a %s" % (name, dist, found, protocol)
            )
        distribution = loadwsgi.importlib_metadata.distribution(dist)
    if protocol in _COMPOSITES:
        loader = loadwsgi.ConfigLoader(node["file"])
    return loadwsgi.LoaderContext(
        obj,
        object_type,
        protocol,
        global_conf,
        local_conf,
        loader,
        distribution=distribution,
        entry_point_name=entry_point_name,
    )


def build(node):
    """The WSGI app of a plan node (a dict) whose factories are all Python."""
    kind = node["type"]
    if kind == "filter":
        inner = build(node["app"])
        return _context(node, loadwsgi.FILTER).create()(inner)
    return _context(node, loadwsgi.APP).create()


def build_json(text):
    return build(json.loads(text))


def setup_logging(path):
    """Configure `logging` from the file's [loggers] sections, as pserve does."""
    parser = configparser.ConfigParser()
    parser.read([path])
    if parser.has_section("loggers"):
        logging.config.fileConfig(
            path,
            {"__file__": os.path.abspath(path), "here": os.path.dirname(os.path.abspath(path))},
            disable_existing_loggers=False,
        )
        return True
    return False


def sources():
    """The source files of the imported modules, for --reload (the standard library left out)."""
    import sys
    import sysconfig

    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        path = os.path.realpath(path)
        if path.startswith(stdlib) and "site-packages" not in path:
            continue
        if os.path.isfile(path):
            found.add(path)
    return sorted(found)
