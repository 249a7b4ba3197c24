"""pulp_fedora_mirror: export Pulp container repositories to a mirror-friendly tree.

This module must stay free of Django and pulpcore imports: the export core, the CLI and
crane_fedora import ``pulp_fedora_mirror.*`` on hosts without Pulp. pulpcore finds the Django app
through the string below (entry point ``pulpcore.plugin``).
"""

default_app_config = "pulp_fedora_mirror.app.PulpFedoraMirrorPluginAppConfig"

__version__ = "0.1.0"
