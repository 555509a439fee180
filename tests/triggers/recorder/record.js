// Shared by the recorder triggers: appends what a trigger was given (event, context fields, the AWS
// environment) as one JSON line to $RECORD_FILE.
const fs = require('fs');

module.exports = (event, context) => {
  const env = {};
  for (const key of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_SES', 'AWS_ENDPOINT_URL_SESV2',
    'AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_LAMBDA_FUNCTION_NAME', '_HANDLER', 'LAMBDA_TASK_ROOT', 'TZ', 'MAIL_FROM']) {
    env[key] = process.env[key] === undefined ? null : process.env[key];
  }
  const seen = {
    event: JSON.parse(JSON.stringify(event)),
    context: {
      functionName: context.functionName,
      awsRequestId: context.awsRequestId,
      remaining: context.getRemainingTimeInMillis(),
      memoryLimitInMB: context.memoryLimitInMB,
    },
    env,
    pid: process.pid,
  };
  fs.appendFileSync(process.env.RECORD_FILE, JSON.stringify(seen) + '\n');
};
