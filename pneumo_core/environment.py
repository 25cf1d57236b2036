"""What a result was produced with: package versions and hardware (for reports and cards)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["describe_environment", "package_versions"]

PACKAGES = (
    "tensorflow",
    "keras",
    "ray",
    "optuna",
    "scikit-learn",
    "numpy",
    "pandas",
    "pillow",
    "matplotlib",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package (``not installed`` when absent)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def describe_environment() -> dict[str, Any]:
    """Versions, platform, CPUs, memory and the GPUs TensorFlow sees (if it is imported)."""
    gpus: list[str] = []
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpus": gpus,
    }
