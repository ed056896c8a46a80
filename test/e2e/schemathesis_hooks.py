# Schemathesis hooks for the API fuzz (test/api-fuzz/schemathesis.test.ts).
# In the run without a token, every call to a protected operation must be refused with 401, whatever
# schemathesis generated: the token is checked before the body or parameters are looked at.
import os

import schemathesis


@schemathesis.check
def only_401_without_token(ctx, response, case):
    if os.environ.get("WAKAME_FUZZ_NO_TOKEN") != "1":
        return None
    # Only the documented method: another one on the same path is not that route (it gets 405).
    if case.method.upper() != case.operation.method.upper():
        return None
    if case.operation.definition.raw.get("security") and response.status_code != 401:
        raise AssertionError(f"{case.method} {case.formatted_path} without the token answered {response.status_code}, not 401")
    return None
