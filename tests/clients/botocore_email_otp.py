"""Drives the local pool's native passwordless sign-in (USER_AUTH with EMAIL_OTP) with botocore, a
client nobody on this project wrote: SELECT_CHALLENGE then EMAIL_OTP, a wrong code, the right one,
the preferred path, GetUser. Codes come from the pool's outbox, found with \\b(\\d{8})\\b.

Usage: botocore_email_otp.py ENDPOINT REGION CLIENT_ID USERNAME — prints one JSON object of what it saw
(never a code, token or Session).
"""

import json
import re
import sys
import urllib.parse
import urllib.request

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, region, client_id, user = sys.argv[1:5]
client = botocore.session.get_session().create_client(
    "cognito-idp",
    region_name=region,
    endpoint_url=endpoint,
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"total_max_attempts": 1}),
)


def latest_code():
    url = f"{endpoint}/_aws/ses?" + urllib.parse.urlencode({"to": user})
    with urllib.request.urlopen(url) as response:
        messages = json.load(response)["messages"]
    return re.search(r"\b(\d{8})\b", messages[-1]["Body"]["text_part"]).group(1)


def answer(session, code):
    return client.respond_to_auth_challenge(
        ClientId=client_id,
        ChallengeName="EMAIL_OTP",
        Session=session,
        ChallengeResponses={"USERNAME": user, "EMAIL_OTP_CODE": code},
    )


seen = {}
started = client.initiate_auth(AuthFlow="USER_AUTH", ClientId=client_id, AuthParameters={"USERNAME": user})
seen["select"] = {"ChallengeName": started["ChallengeName"], "AvailableChallenges": started["AvailableChallenges"]}
picked = client.respond_to_auth_challenge(
    ClientId=client_id,
    ChallengeName="SELECT_CHALLENGE",
    Session=started["Session"],
    ChallengeResponses={"USERNAME": user, "ANSWER": "EMAIL_OTP"},
)
seen["picked"] = {"ChallengeName": picked["ChallengeName"], "ChallengeParameters": picked["ChallengeParameters"]}
code = latest_code()
try:
    answer(picked["Session"], "".join("1" if c == "0" else "0" for c in code))
    seen["wrong"] = "accepted"
except ClientError as e:
    seen["wrong"] = {
        "Code": e.response["Error"]["Code"],
        "Message": e.response["Error"]["Message"],
        "Status": e.response["ResponseMetadata"]["HTTPStatusCode"],
    }
result = answer(picked["Session"], code)["AuthenticationResult"]
seen["signed_in"] = {
    "ExpiresIn": result["ExpiresIn"],
    "TokenType": result["TokenType"],
    "tokens": sorted(k for k in ("IdToken", "AccessToken", "RefreshToken") if result.get(k)),
}

preferred = client.initiate_auth(
    AuthFlow="USER_AUTH",
    ClientId=client_id,
    AuthParameters={"USERNAME": user, "PREFERRED_CHALLENGE": "EMAIL_OTP"},
)
seen["preferred"] = {
    "ChallengeName": preferred["ChallengeName"],
    "AvailableChallenges": preferred.get("AvailableChallenges"),
    "ChallengeParameters": preferred["ChallengeParameters"],
}
access = answer(preferred["Session"], latest_code())["AuthenticationResult"]["AccessToken"]
me = client.get_user(AccessToken=access)
seen["get_user_email"] = next(a["Value"] for a in me["UserAttributes"] if a["Name"] == "email")
print(json.dumps(seen))
