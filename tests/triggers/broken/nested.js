// A Create trigger whose private parameters hold an object, not a string.
exports.handler = async (event) => {
  event.response.privateChallengeParameters = { answer: { code: '123456' } };
  return event;
};
