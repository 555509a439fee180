// Create (ES module): a new 6-digit code from a CSPRNG each round, mailed through SES v2
// (@aws-sdk/client-sesv2); nothing is mailed to a user that does not exist.
import { randomInt } from 'node:crypto';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';

const ses = new SESv2Client({});

export const handler = async (event) => {
  const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  if (!event.request.userNotFound) {
    await ses.send(new SendEmailCommand({
      FromEmailAddress: process.env.MAIL_FROM,
      Destination: { ToAddresses: [event.request.userAttributes.email] },
      Content: {
        Simple: {
          Subject: { Data: 'Your sign-in code' },
          Body: { Text: { Data: `Your sign-in code is ${code}` } },
        },
      },
    }));
  }
  event.response.publicChallengeParameters = {};
  event.response.privateChallengeParameters = { answer: code };
  event.response.challengeMetadata = null;
  return event;
};
