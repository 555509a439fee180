// A trigger file that exports the wrong name.
exports.handle = async (event) => event;
