"""The installed version, read from package metadata once and only when asked."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """globesms' version from its metadata, or ``0+unknown`` in an uninstalled source tree."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as metadata_version

    try:
        return metadata_version("globesms")
    except PackageNotFoundError:
        return "0+unknown"
