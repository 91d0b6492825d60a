"""Platform-wide glue: settings, logging and the ``credit`` command line."""
