"""The one exception type that the command line turns into a single line on stderr."""


class UserError(ValueError):
    """A mistake in what the user asked for: a bad file, name, range or value.

    The message names the argument, the value given and what is allowed. The CLI
    prints it as one line and exits non-zero; it is never shown as a traceback.
    """
