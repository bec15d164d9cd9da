"""jupyterhub-ds hub extensions: storage, pod policy, GPUs and UI on top of Z2JH's KubeSpawner."""

__version__ = "0.1.0"

from .config import configure

__all__ = ["__version__", "configure"]
