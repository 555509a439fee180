// Verify (CommonJS, legacy context.succeed): the answer, as text, against the code, as text.
exports.handler = (event, context) => {
  const expected = event.request.privateChallengeParameters.answer;
  event.response.answerCorrect = typeof expected === 'string' && event.request.challengeAnswer === expected;
  context.succeed(event);
};
