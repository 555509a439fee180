"""A trigger that imports a module that is not installed."""
import not_installed_anywhere  # noqa: F401


def handler(event, context):
    return event
