"""What a UID may be (PS3.5 §9.1), and the 400 that names what is wrong with one."""

from __future__ import annotations

from ..errors import BadRequest

# PS3.5 §9.1: a UID is at most 64 characters, components of digits separated by dots. The rule
# that a component has no leading zero is not enforced: real modalities write such UIDs
# (``1.2.246.352.91.0000217...``) and they compare exactly as strings. Empty components and a
# leading or trailing dot are refused: no real file has them, and "." / ".." would be path names.
UID_MAX_LENGTH = 64
_UID_CHARACTERS = frozenset("0123456789.")


def uid_problem(value: str) -> str | None:
    """Say what keeps ``value`` from being a UID (the words after the UID in a message), or None."""
    if not value:
        return "is empty"
    if bad := next((c for c in value if c not in _UID_CHARACTERS), None):
        return f"contains {bad!r}; a UID is digits and dots"
    if len(value) > UID_MAX_LENGTH:
        return f"is {len(value)} characters; a UID is at most {UID_MAX_LENGTH}"
    if value.startswith("."):
        return "starts with a dot; a UID starts with a digit"
    if value.endswith("."):
        return "ends with a dot; a UID ends with a digit"
    if ".." in value:
        return "has an empty component ('..'); a UID's components are digits"
    return None


def is_valid_uid(value: str) -> bool:
    return uid_problem(value) is None


def uid_error(value: str, label: str) -> str | None:
    """The sentence a refusal gives for the UID ``value`` named ``label``, or None when it is valid."""
    problem = uid_problem(value)
    if problem is None:
        return None
    if not value:
        return f"{label} is empty"
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{label} {shown!r} {problem}"


def check_uid(value: str, what: str) -> str:
    """Return ``value`` or raise 400 saying what is wrong with it (PS3.5 §9.1)."""
    if (error := uid_error(value, f"{what} UID")) is not None:
        raise BadRequest(error)
    return value
