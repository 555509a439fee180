// Verify that records its event.
const record = require('./record');

exports.handler = (event, context, callback) => {
  record(event, context);
  event.response.answerCorrect = event.request.challengeAnswer === event.request.privateChallengeParameters.answer;
  callback(null, event);
};
