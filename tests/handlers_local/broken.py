"""A function whose init fails: it imports a module that is not installed."""

print("importing the dependency")

import not_a_real_dependency_xyz  # noqa: E402, F401


def handler(event: object, context: object) -> str:
    return "unreachable"
