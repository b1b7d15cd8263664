"""Names a package resolves on first use (PEP 562), so importing the package stays cheap.

``crossent`` and ``crossent.recsys`` list their public names against the module that defines
each; the module loads (and with it torch, for most of them) only when a name is first read.

Example:
    >>> table = {"sqrt": "math"}
    >>> namespace: dict = {}
    >>> getattr_ = lazy_names("demo", table, namespace)
    >>> getattr_("sqrt")(9.0), "sqrt" in namespace
    (3.0, True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps each public name to the module
    that defines it (the module itself where it is ``package.name``); the first read imports
    it and stores the value in ``namespace`` (the package's ``globals()``), so later reads are
    plain lookups."""

    def __getattr__(name: str) -> Any:
        module_name = table.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    return __getattr__
