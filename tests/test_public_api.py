"""The public API is assembled in one place."""

from __future__ import annotations

import importlib.metadata

import globesms


def test_all_matches_public_names() -> None:
    """__all__ is sorted and equals the public names of the package."""
    public = {
        name for name in vars(globesms)
        if not name.startswith("_") and not isinstance(getattr(globesms, name), type(globesms))
    }
    assert globesms.__all__ == sorted(globesms.__all__)
    assert set(globesms.__all__) - {"__version__"} == public


def test_version_comes_from_metadata() -> None:
    """__version__ is the installed distribution's version."""
    assert globesms.__version__ == importlib.metadata.version("globesms")
