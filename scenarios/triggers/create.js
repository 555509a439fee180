// Create: a new 6-digit code from a CSPRNG each round, mailed through SES (@aws-sdk/client-ses); run by
// the local pool, the SES client finds the pool through AWS_ENDPOINT_URL. Nothing is mailed to a user
// that does not exist, and nothing public tells known and unknown users apart.
const crypto = require('crypto');
const { SESClient, SendEmailCommand } = require('@aws-sdk/client-ses');

const ses = new SESClient({});

exports.handler = async (event) => {
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
  event.response.publicChallengeParameters = {};
  event.response.privateChallengeParameters = { answer: code };
  return event;
};
