// Create that records its event; the answer is fixed (the test knows it) and nothing is mailed.
const record = require('./record');

exports.handler = async (event, context) => {
  record(event, context);
  event.response.publicChallengeParameters = { hint: 'fixed' };
  event.response.privateChallengeParameters = { answer: 'sesame' };
  event.response.challengeMetadata = `ROUND-${event.request.session.length + 1}`;
  return event;
};
