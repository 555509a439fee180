"""otp-harness: the Python runtime shim that hosts one Lambda handler for the local pool.

It imports the handler's module as AWS's Python runtime does (the code folder first on sys.path), then
answers invocations: one JSON line in on stdin, one JSON line out on a private copy of stdout. Whatever the
function prints goes to stderr (file descriptor 1 is pointed there too), which the pool logs, tagged with
the trigger, so it cannot corrupt the protocol.
"""
import decimal
import importlib
import json
import os
import sys
import time

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

module_name = os.environ["OTP_HARNESS_HANDLER_MODULE"]
function_path = os.environ["OTP_HARNESS_HANDLER_FUNCTION"]
handler_name = os.environ["_HANDLER"]
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])


def send(message):
    protocol.write(json.dumps(message, default=_encode) + "\n")
    protocol.flush()


def _encode(value):
    # The Lambda runtime's encoder: Decimal as a number.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class Context:
    """The Lambda context object's usual fields."""

    def __init__(self, c):
        self.function_name = c.get("functionName")
        self.function_version = "$LATEST"
        self.invoked_function_arn = c.get("invokedFunctionArn")
        self.memory_limit_in_mb = int(c.get("memoryLimitInMB") or 128)
        self.aws_request_id = c.get("awsRequestId")
        self.log_group_name = c.get("logGroupName")
        self.log_stream_name = c.get("logStreamName")
        self.identity = None
        self.client_context = None
        self._deadline_ms = c.get("deadlineMs") or 0

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def load():
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:
        where = f"{e.filename}, line {e.lineno}" if e.filename else module_name
        return None, {"errorType": "Runtime.UserCodeSyntaxError",
                      "errorMessage": f"Syntax error in module '{module_name}': {e.msg} ({where})"}
    except ModuleNotFoundError as e:
        looked = ", ".join(p for p in sys.path if p)
        return None, {"errorType": "Runtime.ImportModuleError",
                      "errorMessage": f"Unable to import module '{module_name}': No module named '{e.name}'; "
                                      f"{sys.executable} looked for it in: {looked}"}
    except Exception as e:  # noqa: BLE001 - any error at import is reported, as Lambda does
        return None, {"errorType": "Runtime.ImportModuleError",
                      "errorMessage": f"Unable to import module '{module_name}': {type(e).__name__}: {e}"}
    target = module
    for part in function_path.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        return None, {"errorType": "Runtime.HandlerNotFound",
                      "errorMessage": f"Handler '{function_path}' missing on module '{module_name}'"}
    return target, None


def main():
    handler, error = load()
    if error is not None:
        send({"ready": False, "error": error})
        sys.exit(1)
    send({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            print(f"otp-harness shim: unreadable request: {e}", file=sys.stderr)
            continue
        try:
            result = handler(request["event"], Context(request.get("context") or {}))
        except Exception as e:  # noqa: BLE001 - the function's error is the answer
            send({"id": request["id"], "ok": False, "error": {"errorType": type(e).__name__, "errorMessage": str(e)}})
            continue
        try:
            text = json.dumps(result, default=_encode)
        except (TypeError, ValueError) as e:
            send({"id": request["id"], "ok": False,
                  "error": {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {e}"}})
            continue
        protocol.write('{"id": %s, "ok": true, "result": %s}\n' % (json.dumps(request["id"]), text))
        protocol.flush()


main()
