"""The platform in a browser: an ASGI application (Starlette, Jinja2 templates, Babel catalogs)
that asks the daemon as the signed-in person for everything it shows or changes."""
