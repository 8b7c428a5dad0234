"""User-facing errors.

Anything the user can fix (a missing file, a malformed JSONL line, an unknown config key, hostile input) raises
:class:`MimoError` with a one-line message that names the file and line or the field.  The CLI prints it as
``mimo <command>: error: <message>`` and exits with status 2 -- no traceback wall.  Programming errors stay
ordinary exceptions.
"""

from __future__ import annotations


class MimoError(Exception):
    """An error caused by the user's input, printed as one line by the CLI."""


class ConfigError(MimoError):
    """A bad config: unknown key, wrong type, unknown preset, missing file."""
