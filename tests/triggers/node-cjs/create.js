// Create (CommonJS, async): a new 6-digit code from a CSPRNG each round, mailed through SES v1
// (@aws-sdk/client-ses); nothing is mailed to a user that does not exist.
const crypto = require('crypto');
const { SESClient, SendEmailCommand } = require('@aws-sdk/client-ses');

const ses = new SESClient({});
let calls = 0; // module state, kept between calls in a warm runtime

exports.handler = async (event) => {
  calls += 1;
  const code = String(crypto.randomInt(0, 1000000)).padStart(6, '0');
  if (!event.request.userNotFound) {
    await ses.send(new SendEmailCommand({
      Source: process.env.MAIL_FROM,
      Destination: { ToAddresses: [event.request.userAttributes.email] },
      Message: {
        Subject: { Data: 'Your sign-in code' },
        Body: { Text: { Data: `Your sign-in code is ${code}` } },
      },
    }));
  }
  console.log(`create: round ${(event.request.session || []).length + 1}, call ${calls} of this runtime`);
  event.response.publicChallengeParameters = {};
  event.response.privateChallengeParameters = { answer: code };
  event.response.challengeMetadata = `CODE-ROUND-${(event.request.session || []).length + 1}`;
  return event;
};
