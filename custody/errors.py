"""The error base class every custody error derives from.

Each error class carries its one-line message template (the first line of its
docstring, filled with the keyword arguments given when raising it) and the
exit code the command ends with. Library code raises; only ``cli.py`` prints.
"""


class CustodyError(Exception):
    """Error: {reason}"""

    exit_code = 2

    def __init__(self, **fields: object) -> None:
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (self.__doc__ or "{reason}").strip().splitlines()[0]
        return template.format(**self.fields)


class ConfigError(CustodyError):
    """{path}: {key}: {problem}"""

    exit_code = 3


class UsageError(CustodyError):
    """{reason}"""

    exit_code = 2
