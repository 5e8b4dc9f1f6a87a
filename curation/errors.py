"""One exception type for mistakes a user can fix; the CLI prints it as one line, no traceback."""


class SightlineError(Exception):
    """A user-facing error: bad path, unknown version, bad config, bad SQL, ..."""
