"""Verify: the answer, as text, against the code, as text."""


def handler(event, context):
    expected = event["request"]["privateChallengeParameters"].get("answer")
    event["response"]["answerCorrect"] = expected is not None and event["request"]["challengeAnswer"] == expected
    return event
