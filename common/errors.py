"""User-facing errors: compare.py prints them as one line and exits non-zero, no traceback."""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing data); the message says how."""

    exit_code = 2


class DataError(UserError):
    """Data not found, truncated, corrupt, or failing its checksum."""

    exit_code = 3


class RecordError(UserError):
    """A result file that cannot be read: corrupt, truncated, or without a needed field."""
