"""Create: a new 6-digit code from the secrets module each round, mailed through SES v2 (boto3)."""
import os
import secrets

import boto3

ses = boto3.client("sesv2")


def handler(event, context):
    code = f"{secrets.randbelow(1_000_000):06d}"
    if not event["request"].get("userNotFound"):
        ses.send_email(
            FromEmailAddress=os.environ["MAIL_FROM"],
            Destination={"ToAddresses": [event["request"]["userAttributes"]["email"]]},
            Content={"Simple": {"Subject": {"Data": "Your sign-in code"},
                                "Body": {"Text": {"Data": f"Your sign-in code is {code}"}}}},
        )
    print(f"create: mailed round {len(event['request'].get('session') or []) + 1}; remaining {context.get_remaining_time_in_millis()} ms")
    event["response"]["publicChallengeParameters"] = {}
    event["response"]["privateChallengeParameters"] = {"answer": code}
    event["response"]["challengeMetadata"] = None
    return event
