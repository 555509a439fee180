// A trigger that requires a module that is not installed.
const uuid = require('left-pad-not-installed');
exports.handler = async (event) => ({ ...event, id: uuid() });
