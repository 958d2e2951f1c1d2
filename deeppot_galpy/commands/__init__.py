"""Sub-commands of the ``deeppot`` CLI: each module has ``add_arguments`` and ``run``."""
