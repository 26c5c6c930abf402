"""The official Python SDK and OFREP provider against a running `liftoff serve`.

Usage: python_client.py BASE_URL EVAL_KEY ADMIN_TOKEN BOOL_FLAG USER_IN USER_OUT
Prints one JSON object of what the SDK resolved; crates/cli/tests/flags.rs judges it.
"""
import json
import sys
import urllib.request

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

base, key, admin, flag, user_in, user_out = sys.argv[1:7]

api.set_provider(OFREPProvider(base, headers_factory=lambda: {"X-API-Key": key}))
client = api.get_client()


def plain(x):
    return getattr(x, "value", x)


def seen(details):
    return {
        "value": details.value,
        "variant": details.variant,
        "reason": plain(details.reason),
        "error_code": plain(details.error_code),
    }


staff = {"email": "jo@example.com"}
other = {"email": "sam@other.org"}
out = {
    "bool_in": seen(client.get_boolean_details(flag, False, EvaluationContext(user_in, staff))),
    "bool_out": seen(client.get_boolean_details(flag, True, EvaluationContext(user_out, other))),
    "string_staff": seen(client.get_string_details("checkout_theme", "none", EvaluationContext(user_in, staff))),
    "string_other": seen(client.get_string_details("checkout_theme", "none", EvaluationContext(user_out, other))),
    "missing": seen(client.get_boolean_details("no_such_flag", True, EvaluationContext(user_in))),
    "wrong_type": seen(client.get_boolean_details("checkout_theme", False, EvaluationContext(user_in))),
}

# The seed runbook's own call, through the admin API: the kill switch.
req = urllib.request.Request(
    base + "/api/admin/feature-flags",
    data=json.dumps({"flag": flag, "enabled": False}).encode(),
    headers={"Authorization": "Bearer " + admin},
    method="POST",
)
urllib.request.urlopen(req).read()
out["after_disable"] = seen(client.get_boolean_details(flag, True, EvaluationContext(user_in, staff)))
print(json.dumps(out))
