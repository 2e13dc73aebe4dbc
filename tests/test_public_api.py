"""The public API is assembled in one place."""

from __future__ import annotations

import importlib.metadata

import pytest

import globesms


def test_all_matches_public_names() -> None:
    """__all__ is sorted, equals the public names of the package, and every name resolves."""
    public = {
        name for name in dir(globesms)
        if not name.startswith("_") and not isinstance(getattr(globesms, name), type(globesms))
    }
    assert globesms.__all__ == sorted(globesms.__all__)
    assert set(globesms.__all__) - {"__version__"} == public


def test_unknown_attribute_raises_attribute_error() -> None:
    """A missing name is an AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_name"):
        globesms.no_such_name  # noqa: B018


def test_version_comes_from_metadata() -> None:
    """__version__ is the installed distribution's version."""
    assert globesms.__version__ == importlib.metadata.version("globesms")
