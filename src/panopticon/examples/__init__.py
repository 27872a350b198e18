"""Example suites shipped with Panopticon."""
