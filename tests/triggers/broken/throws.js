// A trigger that throws.
exports.handler = async () => {
  throw new Error('the code store is unavailable');
};
