"""Sends mail through the local pool's SES API with boto3, a client nobody on this project wrote: SES v1
(query protocol: get_send_quota, get_account_sending_enabled, send_email, send_raw_email) and SES v2 (REST JSON: get_account,
get_email_identity, send_email), finding the pool only through AWS_ENDPOINT_URL_SES and
AWS_ENDPOINT_URL_SESV2 (set by the caller). Also one refusal on each protocol (an unverified sender).

Usage: boto3_ses.py JSON — JSON is {"region", "from", "to": [3 addresses], "codes": [3 codes]}; mail i goes
to to[i] and carries codes[i]. Prints one JSON object of what it saw (message ids, quotas, errors).
"""

import json
import sys
from email.message import EmailMessage

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

args = json.loads(sys.argv[1])
region, sender, to, codes = args["region"], args["from"], args["to"], args["codes"]
config = Config(retries={"total_max_attempts": 1})
# No endpoint_url: the environment variables must be what points boto3 at the pool.
ses = boto3.client("ses", region_name=region, config=config)
sesv2 = boto3.client("sesv2", region_name=region, config=config)


def refused(call):
    try:
        call()
        return "accepted"
    except ClientError as e:
        return {
            "Code": e.response["Error"]["Code"],
            "Message": e.response["Error"]["Message"],
            "Status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }


seen = {"endpoints": {"ses": ses.meta.endpoint_url, "sesv2": sesv2.meta.endpoint_url}}
quota = ses.get_send_quota()
seen["v1_quota"] = {k: quota[k] for k in ("Max24HourSend", "MaxSendRate", "SentLast24Hours")}
seen["v1_sending_enabled"] = ses.get_account_sending_enabled()["Enabled"]
account = sesv2.get_account()
seen["v2_account"] = {
    "ProductionAccessEnabled": account["ProductionAccessEnabled"],
    "SendingEnabled": account["SendingEnabled"],
    "EnforcementStatus": account["EnforcementStatus"],
}
# The sender's domain: a verified domain covers the address, which is no identity of its own.
identity = sesv2.get_email_identity(EmailIdentity=sender.split("@")[1])
seen["v2_identity"] = {k: identity[k] for k in ("IdentityType", "VerifiedForSendingStatus", "VerificationStatus")}

ids = []
ids.append(
    ses.send_email(
        Source=sender,
        Destination={"ToAddresses": [to[0]]},
        Message={
            "Subject": {"Data": "Your sign-in code", "Charset": "UTF-8"},
            "Body": {
                "Text": {"Data": f"Your sign-in code is {codes[0]}", "Charset": "UTF-8"},
                "Html": {"Data": f"<p>Your sign-in code is <b>{codes[0]}</b></p>", "Charset": "UTF-8"},
            },
        },
    )["MessageId"]
)

raw = EmailMessage()
raw["From"] = sender
raw["To"] = to[1]
raw["Subject"] = "Your sign-in code (raw)"
raw.set_content(f"Your sign-in code is {codes[1]}\n")
raw.add_alternative(f"<p>Your sign-in code is <b>{codes[1]}</b></p>", subtype="html")
# No Source, no Destinations: SES reads both from the message.
ids.append(ses.send_raw_email(RawMessage={"Data": raw.as_bytes()})["MessageId"])

ids.append(
    sesv2.send_email(
        FromEmailAddress=sender,
        Destination={"ToAddresses": [to[2]]},
        Content={
            "Simple": {
                "Subject": {"Data": "Your sign-in code (v2)"},
                "Body": {"Text": {"Data": f"Your sign-in code is {codes[2]}"}},
            }
        },
    )["MessageId"]
)
seen["message_ids"] = ids

body = {"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "x"}}}
seen["v1_unverified"] = refused(
    lambda: ses.send_email(Source="intruder@elsewhere.test", Destination={"ToAddresses": [to[0]]}, Message=body)
)
seen["v2_unverified"] = refused(
    lambda: sesv2.send_email(
        FromEmailAddress="intruder@elsewhere.test",
        Destination={"ToAddresses": [to[0]]},
        Content={"Simple": body},
    )
)
seen["v2_absent_identity"] = refused(lambda: sesv2.get_email_identity(EmailIdentity="intruder@elsewhere.test"))
print(json.dumps(seen))
