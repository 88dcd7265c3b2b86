from tests.ingestd.served import extra_config, served_vault, users  # noqa: F401
