"""The tutorial pipeline of tutorial-pipeline.ini as one WSGI callable, loaded by PasteDeploy,
for servers that take a `module:app` instead of a deployment file (granian):

    PYTHONPATH=bench/python granian --interface wsgi granian_app:app
"""

import os

from paste.deploy import loadapp

app = loadapp("config:" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "tutorial-pipeline.ini"))
