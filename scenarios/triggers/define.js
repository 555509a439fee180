// Define (CommonJS, callback style): a first custom challenge, tokens after a right answer, at most three tries.
exports.handler = (event, context, callback) => {
  const session = event.request.session || [];
  const last = session[session.length - 1];
  if (last && last.challengeName === 'CUSTOM_CHALLENGE' && last.challengeResult === true) {
    event.response.issueTokens = true;
    event.response.failAuthentication = false;
  } else if (session.length >= 3) {
    event.response.issueTokens = false;
    event.response.failAuthentication = true;
  } else {
    event.response.issueTokens = false;
    event.response.failAuthentication = false;
    event.response.challengeName = 'CUSTOM_CHALLENGE';
  }
  callback(null, event);
};
