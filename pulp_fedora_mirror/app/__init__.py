"""Django app of the Pulp plugin (loaded by pulpcore through the ``pulpcore.plugin`` entry point).

Everything under ``pulp_fedora_mirror.app`` may import Django and pulpcore; the rest of the
package must not (the CLI and crane_fedora run on hosts without Pulp).
"""

from pulpcore.plugin import PulpPluginAppConfig

from pulp_fedora_mirror import __version__


class PulpFedoraMirrorPluginAppConfig(PulpPluginAppConfig):
    """Registers the plugin: pulpcore imports our viewsets/serializers and creates access policies."""

    name = "pulp_fedora_mirror.app"
    label = "fedora_mirror"
    version = __version__
    python_package_name = "pulp-fedora-mirror"
    domain_compatible = True
