"""A trigger that never answers: a busy loop (it cannot be interrupted from inside)."""


def handler(event, context):
    while True:
        pass
