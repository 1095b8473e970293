"""Print a `curl` command that posts a Plivo-signed (V3) form to the callback service.

For trying the service by hand, as the acceptance does:

    python -m pipelines.callbacks.sign /plivo/inbound From=12125550123 To=18335550100 \\
        Text=STOP MessageUUID=test-1 --to http://127.0.0.1:8787

The signature covers CALLBACK_PUBLIC_URL + the path, with PLIVO_AUTH_TOKEN, exactly as Plivo
signs; `--to` is where curl actually sends it (the service behind that public URL).
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from urllib.parse import urlencode

from pipelines.callbacks.signatures import sign_v3_headers


def curl_command(path: str, form: dict[str, str], to: str, public_url: str, token: str) -> str:
    headers = sign_v3_headers(public_url.rstrip("/") + path, form, token, secrets.token_hex(8))
    parts = ["curl", "-sS", "-X", "POST", to.rstrip("/") + path]
    parts += ["-H", "Content-Type: application/x-www-form-urlencoded"]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data", urlencode(form)]
    return shlex.join(parts)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    to = "http://127.0.0.1:8787"
    if "--to" in args:
        i = args.index("--to")
        to = args[i + 1]
        del args[i : i + 2]
    if not args or not args[0].startswith("/") or any("=" not in a for a in args[1:]):
        sys.exit(__doc__)
    token = os.environ.get("PLIVO_AUTH_TOKEN", "")
    public_url = os.environ.get("CALLBACK_PUBLIC_URL", "")
    if not token or not public_url:
        sys.exit("set PLIVO_AUTH_TOKEN and CALLBACK_PUBLIC_URL as the service has them")
    form = dict(a.split("=", 1) for a in args[1:])
    print(curl_command(args[0], form, to, public_url, token))


if __name__ == "__main__":
    main()
