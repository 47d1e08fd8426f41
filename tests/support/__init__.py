"""Test helpers shared by unit, integration and e2e tests: a fixed clock, event builders, fakes."""
