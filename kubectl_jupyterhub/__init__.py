"""``kubectl jupyterhub``: admin operations on a jupyterhub-ds release from the terminal.

Light on purpose: the standard library only (PyYAML, a dependency of the distribution, is used when present:
``-o yaml`` and a non-default ``hub.baseUrl``); it imports nothing from JupyterHub or ``hub_extensions``, so it
starts fast and the krew package (its sources plus a sh launcher) needs only Python.
"""

from __future__ import annotations

from importlib import metadata

try:
    from ._release import VERSION as __version__  # the krew archive records its version (ci/release/krew_plugin.py)
except ImportError:
    try:
        __version__ = metadata.version("jupyterhub-ds")
    except metadata.PackageNotFoundError:  # run from a checkout without an install
        __version__ = "0.0.0+unknown"
