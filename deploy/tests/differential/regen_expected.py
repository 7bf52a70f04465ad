#!/usr/bin/env python3
"""Run pastedeploy_plan.py on every invocation in cases/CASES.json and save
the outputs under cases/expected/ (pretty-printed, sorted keys).

File name: <ini stem>[__<name>][__server-<server_name>][__globals].json
(the stem has '/' replaced by '_' when the case file is in a sub-folder).
These copies are for reading only; the Rust differential test runs the
oracle live.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, 'cases')


def expected_name(case):
    stem = os.path.splitext(case['file'])[0].replace('/', '_')
    if case.get('name') is not None:
        stem += '__' + case['name']
    if case.get('server_name') is not None:
        stem += '__server-' + case['server_name']
    if case.get('global'):
        stem += '__globals'
    return stem + '.json'


def command(case):
    cmd = [sys.executable, os.path.join(HERE, 'pastedeploy_plan.py'),
           '--eggs', os.path.join(HERE, 'eggs.json'), '--relative-to', CASES]
    if case.get('name') is not None:
        cmd += ['--name', case['name']]
    if case.get('server_name') is not None:
        cmd += ['--server-name', case['server_name']]
    for key, value in (case.get('global') or {}).items():
        cmd += ['--global', '%s=%s' % (key, value)]
    cmd.append('config:' + case['file'])
    return cmd


def main():
    with open(os.path.join(CASES, 'CASES.json')) as f:
        cases = json.load(f)
    out_dir = os.path.join(CASES, 'expected')
    os.makedirs(out_dir, exist_ok=True)
    seen = set()
    for case in cases:
        name = expected_name(case)
        assert name not in seen, 'duplicate expected name %s' % name
        seen.add(name)
        proc = subprocess.run(command(case), capture_output=True, text=True,
                              check=True)
        assert proc.stderr == '', proc.stderr
        result = json.loads(proc.stdout)
        with open(os.path.join(out_dir, name), 'w') as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write('\n')
        kind = 'error ' + result['error']['type'] if 'error' in result else 'ok'
        print('%-55s %s' % (name, kind))


if __name__ == '__main__':
    main()
