"""Schemathesis hooks for run.sh (loaded with SCHEMATHESIS_HOOKS=hooks).

Schemathesis 3.x URL-quotes string path parameters only: a negative test that makes `{key}` an
object or an array puts its repr into the path unquoted, so a generated '?' or '/' sends the
request to another route (e.g. POST /v1/sandboxes/<key> -> 405). Such cases test the fuzzer, not
the API: keep path parameters that are strings (invalid strings are still generated and sent).
"""

import schemathesis


@schemathesis.hook
def filter_path_parameters(context, path_parameters):
    return not path_parameters or all(isinstance(v, str) for v in path_parameters.values())
