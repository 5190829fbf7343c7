"""The error hierarchy every layer of s2c raises.

It lives in `ir`, the lowest package, so that `passes`, `backend` and `s2c` can all raise and catch
the same classes while imports keep flowing one way. The command line prints any `S2CError` as one
line, `error: <message>`, and exits with `exit_code`: 2 for the user's input, 1 for a bug in s2c.

    S2CError
    ├─ InputError        unreadable or invalid model, image or option; names file, node, offset
    ├─ UnsupportedError  every unsupported node at once, with the supported alternatives
    ├─ ResourceError     the limit, how much is needed, how much exists
    └─ InternalError     a bug in s2c
       ├─ VerifyError    the IR broke an invariant
       └─ PassError      a pass failed; names the pass and the passes before it
"""

from __future__ import annotations


class S2CError(Exception):
    """Base of every error s2c raises on purpose."""

    exit_code = 2


class InputError(S2CError):
    """The model, image, input file or an option is unreadable or invalid."""


class UnsupportedError(S2CError):
    """The model uses operators, attributes or values s2c cannot compile.

    `problems` holds one line per offending node so that all of them are reported at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class ResourceError(S2CError):
    """The model does not fit the machine: names the limit, the need and the capacity."""


class InternalError(S2CError):
    """A bug in s2c: an invariant broke that user input cannot break."""

    exit_code = 1

    def __str__(self) -> str:
        return f"internal error (a bug in s2c, please report it): {super().__str__()}"


class VerifyError(InternalError):
    """The IR violates an invariant (types, SSA, shapes)."""


class PassError(InternalError):
    """A pass raised; the message names the pass and the passes that ran before it."""
