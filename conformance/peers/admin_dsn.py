"""Print how to reach the embedded server as dbsandbox's admin role, from `dbsandbox status --json`.

conformance/peers/run.sh uses it for the direct mode: the same server the sandboxes live on.
Without arguments it prints a libpq DSN without dbname; with `--env`, PG* variable assignments
(for drivers that read the environment, like node-postgres).
"""

import json
import shlex
import sys
from urllib.parse import unquote, urlsplit

endpoint = json.load(sys.stdin)["endpoint"]
# Loopback TCP, as the suite reaches the proxy (some of its tests take the host from the DSN);
# the embedded server wants the admin password there, which the status URL carries.
url = urlsplit(endpoint["url"]) if endpoint.get("url") else None
settings = {
    "host": endpoint["host"],
    "port": str(endpoint["port"]),
    "user": endpoint["user"],
}
password = unquote(url.password) if url and url.password else endpoint.get("password")
if password:
    settings["password"] = password
if "--env" in sys.argv[1:]:
    print(" ".join(f"PG{k.upper()}={shlex.quote(v)}" for k, v in settings.items()))
else:
    print(" ".join(f"{k}={v}" for k, v in settings.items()))
