"""The ways a command can stop early, each with its own exit code.

UsageError: the input is wrong (a name, a range, a missing data set, an unreachable server).
    Raised before anything is written; the CLI prints one line and exits 2.
RunFailed: the run started and then failed (a NaN or infinite loss). The run is recorded as
    FAILED with the reason; the CLI exits 1.
StoreFault: a store cannot be used (broken schema, full disk, lost server). The CLI prints one
    line and exits 1; a run already started is marked FAILED where the store can still record it.
"""


class UsageError(ValueError):
    """Bad input: the message is one line naming the field and what is allowed."""


class RunFailed(RuntimeError):
    """A run that started and could not finish; the message is the recorded reason."""


class StoreFault(RuntimeError):
    """A store (MLflow's or Optuna's) failed in a way that is not the input's fault: a broken schema,
    a full disk, a server that dropped the connection. The message is one line naming the store."""
