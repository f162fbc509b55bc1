"""One root for every error alpha12 expects, split by who acts on it.

`UserError`: the user must fix something (settings, a file, a database held by another
process, a models folder that cannot be written). `TransientError`: it may pass by itself (a
source that is down or rate-limited, a timeout, a cluster out of reach). Front ends catch
`Alpha12Error` and show its message; anything else is a bug and keeps its traceback.
"""


class Alpha12Error(Exception):
    """An expected failure, with a message written for the user."""


class UserError(Alpha12Error):
    """Something the user must fix before the same request can work."""


class TransientError(Alpha12Error):
    """A failure that may pass: the same request can work later."""
