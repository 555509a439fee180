// Create, as the common tutorial writes it: Math.random (not a CSPRNG) and a code that never starts
// with 0, kept in privateChallengeParameters as a number.
const { SESClient, SendEmailCommand } = require('@aws-sdk/client-ses');

const ses = new SESClient({});

exports.handler = async (event) => {
  let secretLoginCode;
  if (!event.request.session || !event.request.session.length) {
    secretLoginCode = Math.floor(100000 + Math.random() * 900000);
  } else {
    secretLoginCode = Math.floor(100000 + Math.random() * 900000);
  }
  if (!event.request.userNotFound) {
    await ses.send(new SendEmailCommand({
      Source: process.env.MAIL_FROM,
      Destination: { ToAddresses: [event.request.userAttributes.email] },
      Message: {
        Subject: { Data: 'Your sign-in code' },
        Body: { Text: { Data: `Your sign-in code is ${secretLoginCode}` } },
      },
    }));
  }
  event.response.publicChallengeParameters = { email: event.request.userAttributes.email || '' };
  event.response.privateChallengeParameters = { secretLoginCode };
  event.response.challengeMetadata = `CODE-${secretLoginCode}`;
  return event;
};
