#!/usr/bin/env python3
"""Reference oracle: what does the real PasteDeploy 3.1.0 build for a config?

Usage:
    python3 pastedeploy_plan.py --eggs eggs.json --relative-to DIR
        [--name APPNAME] [--server-name NAME] [--global KEY=VALUE ...] URI

Fake distributions described by the eggs manifest are registered in-process
(a sys.meta_path finder implementing find_distributions); their entry points
resolve to attributes of an in-memory module ``serve_fake_eggs`` whose
"factories" record how PasteDeploy called them and return plain dicts.  Then
``loadserver`` and ``loadapp`` are called exactly as pserve would (server
first), and one JSON object is printed on stdout:

    {"app": NODE, "server": SERVER_NODE | null}
    {"error": {"type": "<exception class name>", "message": "<str(exc)>"}}

The exit status is 0 in both cases (2 only for command-line misuse).
Nothing is installed, no socket is opened, only the stdlib and PasteDeploy
are imported.
"""

import argparse
import importlib.metadata as md
import json
import os
import re
import sys
import types
from urllib.parse import unquote

FAKE_MODULE = 'serve_fake_eggs'

COMPOSITE_GROUPS = ('paste.composite_factory', 'paste.composit_factory')
KNOWN_GROUPS = (
    'paste.app_factory',
    'paste.composite_factory',
    'paste.composit_factory',
    'paste.filter_factory',
    'paste.filter_app_factory',
    'paste.server_factory',
    'paste.server_runner',
)


def sentinel_app():
    return {'type': 'sentinel'}


# ---------------------------------------------------------------------------
# Recording factories
# ---------------------------------------------------------------------------


def _base(kind, egg, group, global_conf, local):
    return {
        'type': kind,
        'egg': egg,
        'protocol': group,
        'global_conf': dict(global_conf),
        'local_conf': dict(local),
    }


def _children(rule, loader, global_conf, local):
    """Load a composite's children the way the real composite would.

    Returns {requested name/URI: created object}.  Loading order follows the
    real factories (it only matters for which error surfaces first).
    """
    apps = {}
    if rule is None:
        return apps
    if rule == 'app_dot':
        # fakeapp.apps.make_remote_addr: keys 'app.N' (file order)
        for key, value in local.items():
            if key.startswith('app.'):
                apps[value] = loader.get_app(value, global_conf=global_conf)
    elif rule == 'cascade':
        # paste.cascade.make_cascade: keys 'app*', loaded in file order (tried sorted by key)
        for key, value in local.items():
            if key.startswith('app'):
                apps[value] = loader.get_app(value, global_conf=global_conf)
    elif rule == 'urlmap':
        # paste.urlmap.urlmap_factory, minus parse_path_expression/normalize_url
        rest = dict(local)
        if 'not_found_app' in rest:
            not_found = rest.pop('not_found_app')
        else:
            not_found = global_conf.get('not_found_app')
        if not_found:
            apps[not_found] = loader.get_app(not_found, global_conf=global_conf)
        for _path, value in rest.items():
            apps[value] = loader.get_app(value, global_conf=global_conf)
    else:
        raise ValueError('unknown children rule %r in eggs manifest' % rule)
    return apps


def make_factory(dist, group, name, children):
    egg = '%s#%s' % (dist, name)

    if group == 'paste.app_factory':

        def factory(global_conf, **local):
            return _base('app', egg, group, global_conf, local)

    elif group in COMPOSITE_GROUPS:

        def factory(loader, global_conf, **local):
            node = _base('composite', egg, group, global_conf, local)
            node['apps'] = _children(children, loader, global_conf, local)
            return node

    elif group == 'paste.filter_factory':

        def factory(global_conf, **local):
            def filter_(app):
                node = _base('filter', egg, group, global_conf, local)
                node['app'] = app
                return node

            return filter_

    elif group == 'paste.filter_app_factory':

        def factory(app, global_conf, **local):
            node = _base('filter', egg, group, global_conf, local)
            node['app'] = app
            return node

    elif group == 'paste.server_factory':

        def factory(global_conf, **local):
            return _base('server', egg, group, global_conf, local)

    elif group == 'paste.server_runner':

        def factory(app, global_conf, **local):
            return _base('server', egg, group, global_conf, local)

    else:
        raise ValueError('unknown entry-point group %r in eggs manifest' % group)

    factory.__name__ = factory.__qualname__ = re.sub(r'\W', '_', egg)
    return factory


# ---------------------------------------------------------------------------
# Fake distributions
# ---------------------------------------------------------------------------


def normalize(name):
    # importlib.metadata.Prepared.normalize (PEP 503 + dashes as underscores)
    return re.sub(r'[-_.]+', '-', name).lower().replace('-', '_')


class FakeDistribution(md.Distribution):
    def __init__(self, name, entry_points_txt):
        self._name = name
        self._files = {
            'METADATA': 'Metadata-Version: 2.1\nName: %s\nVersion: 0.0.0\n' % name,
            'entry_points.txt': entry_points_txt,
        }

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):
        return os.path.join('/nonexistent-serve-fake-eggs', self._name, str(path))


class FakeDistFinder:
    """A meta-path finder that only knows about distributions."""

    def __init__(self, dists):
        self.dists = dists  # normalized name -> FakeDistribution

    def find_spec(self, fullname, path=None, target=None):
        return None

    def find_distributions(self, context=md.DistributionFinder.Context()):
        if context.name is None:
            return iter(list(self.dists.values()))
        dist = self.dists.get(normalize(context.name))
        return iter([dist] if dist is not None else [])


def register_fake_eggs(manifest):
    module = types.ModuleType(FAKE_MODULE)
    module.__file__ = None
    by_dist = {}  # normalized -> (spelling, {group: [(name, attr)]})
    for i, entry in enumerate(manifest):
        dist, group, name = entry['dist'], entry['group'], entry['name']
        children = entry.get('children')
        if group not in KNOWN_GROUPS:
            raise ValueError('unknown entry-point group %r in eggs manifest' % group)
        attr = 'ep_%d' % i
        setattr(module, attr, make_factory(dist, group, name, children))
        key = normalize(dist)
        spelling, groups = by_dist.setdefault(key, (dist, {}))
        groups.setdefault(group, []).append((name, attr))
    dists = {}
    for key, (spelling, groups) in by_dist.items():
        lines = []
        for group, entries in groups.items():
            lines.append('[%s]' % group)
            for name, attr in entries:
                lines.append('%s = %s:%s' % (name, FAKE_MODULE, attr))
            lines.append('')
        dists[key] = FakeDistribution(spelling, '\n'.join(lines))
    sys.modules[FAKE_MODULE] = module
    # First in line, so the fakes shadow anything really installed
    # (PasteDeploy itself is installed and has its own entry points).
    sys.meta_path.insert(0, FakeDistFinder(dists))


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def to_json(obj):
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if callable(obj):
        # A filter where an object was expected (filter-with on a pipeline or
        # filter-app returns a filter, not an app).  Record what it does to a
        # sentinel app.
        try:
            applied = to_json(obj(sentinel_app()))
        except Exception as exc:  # pragma: no cover - defensive
            return {'type': 'filter-function', 'error': error_json(exc)}
        return {'type': 'filter-function', 'applied': applied}
    return {'type': 'unknown', 'python_type': type(obj).__name__}


def error_json(exc):
    return {'type': type(exc).__name__, 'message': str(exc)}


def config_path_as_built(uri, relative_to):
    """The file name PasteDeploy's _loadconfig builds for a config: URI
    (used to recognise "the top-level file has no [server:main]")."""
    uri = uri.split('#', 1)[0]
    if ':' not in uri:
        return None
    scheme, path = uri.split(':', 1)
    if scheme.lower() != 'config':
        return None
    isabs = os.path.isabs(path)
    path = path.replace('\\', '/')
    if not isabs:
        if not relative_to:
            return None
        relative_to = relative_to.replace('\\', '/')
        if relative_to.endswith('/'):
            path = relative_to + path
        else:
            path = relative_to + '/' + path
    if path.startswith('///'):
        path = path[2:]
    return unquote(path).strip()


def plan(uri, app_name, server_name, relative_to, global_conf):
    from paste.deploy import loadapp, loadserver

    server = None
    try:
        srv = loadserver(
            uri, name=server_name, relative_to=relative_to, global_conf=global_conf
        )
    except LookupError as exc:
        top = config_path_as_built(uri, relative_to)
        missing_main = (
            "No section 'main' (prefixed by 'server') found in config %s" % top
        )
        if server_name is None and top is not None and str(exc) == missing_main:
            srv = None
        else:
            raise
    if srv is not None:
        if isinstance(srv, dict):
            server = srv  # paste.server_factory: our factory's dict
        elif callable(srv):
            # paste.server_runner: PasteDeploy returned server_wrapper(app);
            # calling it runs runner(app, global_conf, **local) -> our dict.
            server = srv(sentinel_app())
        else:
            server = srv
    app = loadapp(uri, name=app_name, relative_to=relative_to, global_conf=global_conf)
    return {'app': to_json(app), 'server': to_json(server)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--eggs', required=True, help='eggs manifest (JSON)')
    parser.add_argument('--relative-to', required=True, dest='relative_to')
    parser.add_argument('--name', default=None, help='app name (loadapp name=)')
    parser.add_argument('--server-name', default=None, dest='server_name')
    parser.add_argument(
        '--global', action='append', default=[], dest='globals_',
        metavar='KEY=VALUE', help='caller global_conf entry (repeatable)',
    )
    parser.add_argument(
        '--cases', default=None,
        help='batch mode: a CASES.json list; prints one JSON line per case, in order',
    )
    parser.add_argument('uri', nargs='?')
    args = parser.parse_args(argv)
    if (args.cases is None) == (args.uri is None):
        parser.error('give either a URI or --cases')

    global_conf = {}
    for item in args.globals_:
        if '=' not in item:
            parser.error('--global %r has no "="' % item)
        key, value = item.split('=', 1)
        global_conf[key] = value

    with open(args.eggs, encoding='utf-8') as f:
        register_fake_eggs(json.load(f))

    if args.cases is not None:
        with open(args.cases, encoding='utf-8') as f:
            cases = json.load(f)
        for case in cases:
            try:
                result = plan(
                    'config:' + case['file'], case.get('name'), case.get('server_name'),
                    args.relative_to, case.get('global') or None,
                )
            except Exception as exc:
                result = {'error': error_json(exc)}
            sys.stdout.write(json.dumps(result, sort_keys=True, ensure_ascii=True) + '\n')
        return 0

    try:
        result = plan(
            args.uri, args.name, args.server_name, args.relative_to,
            global_conf or None,
        )
    except Exception as exc:
        result = {'error': error_json(exc)}
    sys.stdout.write(json.dumps(result, sort_keys=True, ensure_ascii=True) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
