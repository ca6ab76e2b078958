"""Fixtures shared with the other bundle tests (tests/bundle_helpers.py)."""

from bundle_helpers import shipped_bundle, small_bfm_file  # noqa: F401 - pytest fixtures
