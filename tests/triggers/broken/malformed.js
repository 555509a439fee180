// A trigger that answers with something other than the event.
exports.handler = async () => ({ answerCorrect: true });
