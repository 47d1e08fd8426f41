"""Shared fixtures; the sandbox services start once per session, only when a test asks for them."""

pytest_plugins = ["tests.support.services"]
