"""Errors a user can act on, as opposed to bugs in this package.

The command line prints a ``UserError`` as one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the input, the parameters or the environment."""


class InputError(UserError):
    """A data file that cannot be read as ShareGPT conversations.

    The message names the file and, where there is one, the record by its
    position in the file (0-based) and its id.
    """

    def __init__(self, path, problem, record_index=None, record_id=None):
        where = str(path)
        if record_index is not None:
            where += f": record {record_index}"
            if record_id is not None:
                where += f" (id {record_id!r})"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.record_index = record_index
        self.record_id = record_id
