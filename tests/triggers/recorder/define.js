// Define that records its event: a custom challenge, tokens after a right answer, at most three tries.
const record = require('./record');

exports.handler = async (event, context) => {
  record(event, context);
  const session = event.request.session;
  const last = session[session.length - 1];
  if (last && last.challengeResult) {
    event.response.issueTokens = true;
  } else if (session.length >= 3) {
    event.response.failAuthentication = true;
  } else {
    event.response.challengeName = 'CUSTOM_CHALLENGE';
  }
  return event;
};
