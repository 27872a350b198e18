"""Entry points: how outside packages add providers and metrics.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."panopticon.providers"]
    myllm = "my_package.provider:create"        # ProviderConfig -> Provider

    [project.entry-points."panopticon.metrics"]
    my_metric = "my_package.metric:register"    # a callable that calls register_metric(...)

and, once installed, ``provider: myllm`` and ``type: my_metric`` work in suites, the API and
the dashboard. The built-ins register through the same registries.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoints, entry_points
from typing import Any

from panopticon.errors import ConfigError, Issue

__all__ = ["load_entry_points"]


@functools.cache
def _installed() -> EntryPoints:
    """Every installed package's entry points, read once per process: reading them opens a
    file of every installed distribution (hundreds in a full environment), and providers and
    metrics both ask."""
    return entry_points()


def load_entry_points(group: str) -> dict[str, Any]:
    """Every entry point of ``group``, loaded: name -> object. One that cannot be loaded is
    an error naming the package, never skipped in silence (a suite naming it would then fail
    with a misleading 'unknown provider')."""
    loaded: dict[str, Any] = {}
    for ep in _installed().select(group=group):
        try:
            loaded[ep.name] = ep.load()
        except Exception as exc:  # any import-time failure of someone else's package
            package = ep.dist.name if ep.dist is not None else "an installed package"
            raise ConfigError(
                Issue(
                    f"the plugin '{ep.name}' ({ep.value}) of {package} cannot be loaded: "
                    f"{exc.__class__.__name__}: {exc}",
                    field=group,
                    hint=f"fix or uninstall {package} (pip uninstall {package})",
                )
            ) from None
    return loaded
