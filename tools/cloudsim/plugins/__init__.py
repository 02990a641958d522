"""One module (or package) per cloud; each exposes `plugin(**options)` -> a core Plugin.

from tools.cloudsim.plugins import load
azure = load("azure")           # tools.cloudsim.plugins.azure.plugin()
"""

import importlib


def load(name, **options):
    if not name.isidentifier():
        raise ValueError("bad cloud name %r" % name)
    try:
        module = importlib.import_module("%s.%s" % (__name__, name))
    except ModuleNotFoundError as exc:
        if exc.name == "%s.%s" % (__name__, name):
            raise ValueError("no emulator plug-in for cloud %r" % name) from None
        raise
    return module.plugin(**options)
