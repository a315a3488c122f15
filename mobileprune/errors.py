"""The one base of every error a user can cause (bad spec, a model torch.export cannot capture,
a profile of another device, a broken artifact ...): the CLI prints these as one paragraph and
exits 2; anything else is a bug and keeps its traceback."""


class MobilepruneError(Exception):
    """An error in what the user asked for, with a message that says what to do."""


class PruneWarning(UserWarning):
    """Pruning ran, but in a regime where its result is less certain (too few steps, too
    little evidence): said once, with what would help."""


class SettingsError(MobilepruneError, ValueError):
    """A settings object (e.g. prune.MeasuredRounds) built with a value it cannot take."""
