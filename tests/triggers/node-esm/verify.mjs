// Verify (ES module, async): the answer, as text, against the code, as text.
export async function handler(event) {
  event.response.answerCorrect = event.request.challengeAnswer === event.request.privateChallengeParameters.answer;
  return event;
}
