"""The socket tests' shared fixtures (tests.ingestd.served)."""

from tests.ingestd.served import extra_config, served_vault, users  # noqa: F401
