"""A Create trigger that reads a key the event does not have (the KeyError a real one shipped)."""


def handler(event, context):
    return event["response"]["challengeMetaData"]
