"""Fixtures shared with the other bundle tests (tests/bundle_helpers.py)."""

from bundle_helpers import shipped_bundle  # noqa: F401 - a pytest fixture
