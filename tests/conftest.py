"""Shared fixtures; the sandbox services start once per session, only when a test asks for them.

Property tests run 400 examples each in ``make test`` (the default profile);
``HYPOTHESIS_PROFILE=long`` runs 20,000, a search that takes minutes rather than seconds.
"""

import os

from hypothesis import settings

pytest_plugins = ["tests.support.services"]

settings.register_profile("default", max_examples=400)
settings.register_profile("long", max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
