"""The one exception type for bad user input.

Anything raised as :class:`BenchError` is printed by the CLI as a single line
(``bench: error: ...``) and exits with status 2; everything else is a bug or a
failing trial and keeps its traceback.
"""


class BenchError(Exception):
    """Bad input from the user: the message names the problem and the fix."""
