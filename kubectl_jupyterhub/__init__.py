"""``kubectl jupyterhub``: admin operations on a jupyterhub-ds release from the terminal.

Light on purpose: the standard library plus PyYAML (already a dependency of the distribution); it imports
nothing from JupyterHub or ``hub_extensions``, so it starts fast on an admin's laptop.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("jupyterhub-ds")
except metadata.PackageNotFoundError:  # run from a checkout without an install
    __version__ = "0.0.0+unknown"
