"""Credentials out of repository URLs, wherever a URL is shown.

Most backends refuse secrets in their URL (they come from the environment),
but two spellings can still carry one: rclone connection strings
(``rclone:remote,pass=SECRET:path``, ``rclone::s3,secret_access_key=...:b``)
and ``scheme://user:password@host`` forms. Everything that prints, logs or
reports a repository URL passes it through :func:`redact_url`; messages that
may quote one (errors from rclone, from URL parsing) go through
:func:`redact_text`. Pure functions, thread-safe.
"""

from __future__ import annotations

import re

# "remote,key=value,...:path" and ":type,key=value:path": everything between the
# first comma and the colon that ends the remote (values may be quoted, and
# quoted values may hold colons).
_CONNECTION_STRING = re.compile(r"""^(:?[^,:]*),(?:[^:'"]|'[^']*'|"[^"]*")*:""")
# The password of "scheme://user:password@host".
_USERINFO = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


def redact_remote(remote: str) -> str:
    """An rclone ``REMOTE:PATH`` without its connection-string parameters."""
    return _CONNECTION_STRING.sub(r"\1,...:", remote, count=1)


def redact_url(url: str) -> str:
    """The repository URL as it may be shown: no credentials in it."""
    scheme, sep, rest = url.partition(":")
    if sep and scheme == "rclone":
        return f"rclone:{redact_remote(rest)}"
    return _USERINFO.sub(r"\1:***@", url)


def redact_text(text: str, url: str) -> str:
    """``text`` with every spelling of ``url`` that carries secrets replaced by
    its redacted form (the whole URL, and an rclone URL's bare remote)."""
    safe = redact_url(url)
    if safe == url:
        return text
    text = text.replace(url, safe)
    scheme, sep, rest = url.partition(":")
    if sep and scheme == "rclone":
        text = text.replace(rest, redact_remote(rest))
        # rclone quotes the remote without its path in some messages.
        match = _CONNECTION_STRING.match(rest)
        if match:
            text = text.replace(match.group(0)[:-1], match.group(1) + ",...")
    return text


__all__ = ["redact_remote", "redact_text", "redact_url"]
