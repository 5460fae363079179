"""How ``app.run()``'s server processes find the app: by the file of the running program.

``python site.py`` runs ``site.py`` as ``__main__``; worker processes (spawned) see it again as
``__mp_main__``. A plain ``import site`` would find the standard library's module instead, so the
app is looked up by file path, and only imported afresh when no module of that file is loaded.
A program started with ``python -m package.module`` is imported by that name instead, so that
its relative imports work in the workers too.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

FILE_VARIABLE = "CROSSWAY_APP_FILE"
ATTRIBUTE_VARIABLE = "CROSSWAY_APP_ATTRIBUTE"
MODULE_VARIABLE = "CROSSWAY_APP_MODULE"
_MODULE_NAME = "crossway_app_main"


def load() -> Any:
    """The application named by CROSSWAY_APP_FILE and CROSSWAY_APP_ATTRIBUTE (a factory for
    ``Config(app="consumers.app.loader:load", factory=True)``)."""
    attribute = os.environ.get(ATTRIBUTE_VARIABLE, "app")
    module_name = os.environ.get(MODULE_VARIABLE)
    if module_name:
        # A spawned worker may already run it as __mp_main__: use that copy, not a second one.
        for name in ("__main__", "__mp_main__"):
            spec = getattr(sys.modules.get(name), "__spec__", None)
            if spec is not None and spec.name == module_name:
                return getattr(sys.modules[name], attribute)
        return getattr(importlib.import_module(module_name), attribute)
    path = os.path.abspath(os.environ[FILE_VARIABLE])
    for name in ("__main__", "__mp_main__", _MODULE_NAME):
        module = sys.modules.get(name)
        filename = getattr(module, "__file__", None)
        if module is not None and filename and os.path.abspath(filename) == path:
            return getattr(module, attribute)
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the application file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return getattr(module, attribute)
