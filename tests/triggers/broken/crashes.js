// A trigger whose runtime dies: an exception thrown outside the handler's promise chain.
exports.handler = (event, context, callback) => {
  setImmediate(() => {
    throw new Error('unexpected state');
  });
};
