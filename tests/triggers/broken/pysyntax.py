"""A trigger with a syntax error."""


def handler(event, context)
    return event
