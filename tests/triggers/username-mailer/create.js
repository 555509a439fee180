// Create that mails event.userName: right in a pool whose usernames are the addresses, wrong in one
// signing in by an email attribute (there userName is the user's UUID).
const crypto = require('crypto');
const { SESClient, SendEmailCommand } = require('@aws-sdk/client-ses');

const ses = new SESClient({});

exports.handler = async (event) => {
  const code = String(crypto.randomInt(0, 1000000)).padStart(6, '0');
  await ses.send(new SendEmailCommand({
    Source: process.env.MAIL_FROM,
    Destination: { ToAddresses: [event.userName] },
    Message: { Subject: { Data: 'Your sign-in code' }, Body: { Text: { Data: `Your sign-in code is ${code}` } } },
  }));
  event.response.privateChallengeParameters = { answer: code };
  return event;
};
