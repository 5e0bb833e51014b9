"""A module that fails at import with an exception class of its own."""


class SettingsError(Exception):
    """Raised when settings are wrong."""


raise SettingsError("settings are wrong", 42)
