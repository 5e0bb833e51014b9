"""A module whose dependency is not installed."""

import not_a_real_dependency_xyz  # noqa: F401


def handler(event, context):
    return event
