// A trigger that never answers: a promise that never settles.
exports.handler = () => new Promise(() => {});
