// A trigger with a syntax error.
exports.handler = async (event) => {
  return event
};
}
