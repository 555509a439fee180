// otp-harness: the Node.js runtime shim that hosts one Lambda handler for the local pool.
// It loads the handler as AWS's Node.js runtime does (CommonJS or ES module by extension and the nearest
// package.json "type"), then answers invocations: one JSON line in on stdin, one JSON line out on stdout.
// console output goes to stderr (the pool logs it, tagged with the trigger), so it cannot corrupt the
// protocol. Completion styles: a returned promise, callback(err, result), context.done/succeed/fail;
// the first one wins. An uncaught exception ends the process with status 129, an unhandled rejection
// with 128, as the Lambda runtime does.
'use strict';
const fs = require('fs');
const path = require('path');
const url = require('url');
const readline = require('readline');
const Module = require('module');

const protocolWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const send = (message) => protocolWrite(JSON.stringify(message) + '\n');

const file = process.env.OTP_HARNESS_HANDLER_FILE;
const functionPath = process.env.OTP_HARNESS_HANDLER_FUNCTION;
const handlerName = process.env._HANDLER;
let current = null;

function errorOf(error) {
  if (error instanceof Error) {
    return { errorType: error.name || 'Error', errorMessage: error.message };
  }
  if (error === undefined || error === null) {
    return { errorType: 'handled', errorMessage: 'handled' };
  }
  return { errorType: typeof error, errorMessage: String(error) };
}

function packageType(dir) {
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        return JSON.parse(fs.readFileSync(candidate, 'utf8')).type || 'commonjs';
      } catch (_) {
        return 'commonjs';
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return 'commonjs';
    dir = parent;
  }
}

function loadError(error) {
  const message = error && error.message ? String(error.message) : String(error);
  const missing = /Cannot find (?:module|package) '([^']+)'/.exec(message);
  if (error && (error.code === 'MODULE_NOT_FOUND' || error.code === 'ERR_MODULE_NOT_FOUND') && missing) {
    const looked = Module._nodeModulePaths(path.dirname(file)).join(', ');
    return {
      errorType: 'Runtime.ImportModuleError',
      errorMessage: `${handlerName}: cannot find module '${missing[1]}', required by ${file}; looked for it in: ${looked} (run npm install in the code folder)`,
    };
  }
  if (error instanceof SyntaxError) {
    const first = String(error.stack || '').split('\n')[0];
    const where = /:\d+$/.test(first) ? ` at ${first.replace(/^file:\/\//, '')}` : ` in ${file}`;
    return { errorType: 'Runtime.UserCodeSyntaxError', errorMessage: `SyntaxError: ${message}${where}` };
  }
  return { errorType: 'Runtime.UserCodeError', errorMessage: `${handlerName}: loading ${file} failed: ${(error && error.name) || 'Error'}: ${message}` };
}

async function load() {
  const ext = path.extname(file);
  const esm = ext === '.mjs' || (ext !== '.cjs' && packageType(path.dirname(file)) === 'module');
  const loaded = esm ? await import(url.pathToFileURL(file).href) : require(file);
  let target = loaded;
  for (const part of functionPath.split('.')) {
    target = target == null ? undefined : target[part];
  }
  if (typeof target !== 'function') {
    throw Object.assign(new Error(`${handlerName} is undefined or not exported`), { handlerNotFound: true });
  }
  return target;
}

function context(request, finish) {
  const c = request.context || {};
  return {
    functionName: c.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: c.invokedFunctionArn,
    memoryLimitInMB: String(c.memoryLimitInMB || 128),
    awsRequestId: c.awsRequestId,
    logGroupName: c.logGroupName,
    logStreamName: c.logStreamName,
    identity: undefined,
    clientContext: undefined,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, (c.deadlineMs || 0) - Date.now()),
    done: (error, result) => finish(error, result),
    succeed: (result) => finish(null, result),
    fail: (error) => finish(error === undefined ? null : error, undefined, error === undefined),
  };
}

function invoke(handler, request) {
  let finished = false;
  const finish = (error, result, failedWithoutError) => {
    if (finished) return;
    finished = true;
    current = null;
    if (error || failedWithoutError) {
      send({ id: request.id, ok: false, error: errorOf(error) });
      return;
    }
    let text;
    try {
      text = JSON.stringify(result === undefined ? null : result);
    } catch (e) {
      send({ id: request.id, ok: false, error: { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${e.message}` } });
      return;
    }
    protocolWrite(`{"id":${JSON.stringify(request.id)},"ok":true,"result":${text}}\n`);
  };
  current = request.id;
  try {
    const returned = handler(request.event, context(request, finish), (error, result) => finish(error, result));
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => finish(null, result), (error) => finish(error === undefined ? null : error, undefined, error === undefined));
    }
  } catch (error) {
    finish(error, undefined, true);
  }
}

process.on('uncaughtException', (error) => {
  process.stderr.write(`Uncaught exception: ${(error && error.stack) || error}\n`);
  process.exit(129);
});
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`Unhandled promise rejection: ${(reason && reason.stack) || reason}\n`);
  process.exit(128);
});

load().then(
  (handler) => {
    send({ ready: true });
    const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (!line.trim()) return;
      let request;
      try {
        request = JSON.parse(line);
      } catch (e) {
        process.stderr.write(`otp-harness shim: unreadable request: ${e.message}\n`);
        return;
      }
      invoke(handler, request);
    });
    lines.on('close', () => process.exit(0));
  },
  (error) => {
    const reported = error && error.handlerNotFound
      ? { errorType: 'Runtime.HandlerNotFound', errorMessage: error.message }
      : loadError(error);
    send({ ready: false, error: reported });
    process.exit(1);
  },
);
