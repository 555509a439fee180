// Create with a sound generator (crypto.randomInt, any first digit), mailing the 6-digit text — but
// keeping the code as a number: 012345 is kept as 12345.
const crypto = require('crypto');
const { SESClient, SendEmailCommand } = require('@aws-sdk/client-ses');

const ses = new SESClient({});

exports.handler = async (event) => {
  const code = crypto.randomInt(0, 1000000);
  const text = String(code).padStart(6, '0');
  if (!event.request.userNotFound) {
    await ses.send(new SendEmailCommand({
      Source: process.env.MAIL_FROM,
      Destination: { ToAddresses: [event.request.userAttributes.email] },
      Message: { Subject: { Data: 'Your sign-in code' }, Body: { Text: { Data: `Your sign-in code is ${text}` } } },
    }));
  }
  event.response.publicChallengeParameters = {};
  event.response.privateChallengeParameters = { secretLoginCode: code };
  return event;
};
