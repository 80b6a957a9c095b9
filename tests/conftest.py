"""Shared fixtures live in tests/fixtures/, one module per concern, loaded as plugins."""

pytest_plugins = ["tests.fixtures.models", "tests.fixtures.videos"]
