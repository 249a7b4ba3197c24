"""Packaging for pulp_fedora_mirror (export core, CLI, Pulp plugin) and crane_fedora.

``pip install .`` gives the export core, the ``fedora-mirror`` CLI and crane_fedora with no Pulp
or Django; ``pip install .[pulp]`` adds what the Pulp plugin needs.
"""

from setuptools import find_packages, setup

setup(
    name="pulp-fedora-mirror",
    version="0.1.0",
    description="Export Pulp container repositories to a mirror-friendly tree, served by crane_fedora",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    python_requires=">=3.11",
    packages=find_packages(
        include=["pulp_fedora_mirror", "pulp_fedora_mirror.*", "crane_fedora", "crane_fedora.*"]
    ),
    include_package_data=True,
    package_data={"crane_fedora": ["*.conf", "templates/ui/*.html", "ui/static/*"]},
    install_requires=[
        "Flask>=3.0,<4",
        "requests>=2.28",
        "prometheus_client>=0.17",  # crane_fedora's GET /metrics
    ],
    extras_require={
        "pulp": [
            "pulpcore>=3.118,<3.130",
            "pulp-container>=2.30,<2.31",
        ],
        # pulp-cli plugin (``pulp fedora-mirror …``) and the pulp-glue based client. pulpcore
        # 3.123 itself requires pulp-glue<0.42, so the pair stays on the 0.41 series.
        "cli": [
            "pulp-cli>=0.41,<0.42",
            "pulp-glue>=0.41,<0.42",
        ],
        "amqp": [
            "python-qpid-proton>=0.37",
            "pika>=1.2",
        ],
        "messages": [
            "fedora-messaging>=3.4",
        ],
        "server": [
            "gunicorn>=21",
            "granian>=1.6",
        ],
        "test": [
            "pytest>=8,<9",
            "pytest-django",
            "pytest-timeout",
            "ruff",
            "gunicorn>=21",
            "granian>=1.6",
            "hypothesis>=6",
            "fedora-messaging>=3.4",
            "selenium>=4.10",  # drives Debian's chromium + chromium-driver (tests/browser)
            "pillow>=10",  # screenshots: decode and check they are not blank
        ],
    },
    entry_points={
        "console_scripts": [
            "fedora-mirror = pulp_fedora_mirror.cli:main",
        ],
        "pulpcore.plugin": [
            "pulp_fedora_mirror = pulp_fedora_mirror:default_app_config",
        ],
        "pulp_cli.plugins": [
            "fedora_mirror = pulp_fedora_mirror.pulpcli",
        ],
        "fedora.messages": [
            "pulp_fedora_mirror.export.complete.v1 = pulp_fedora_mirror.notify.schema:ExportCompleteV1",
        ],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Flask",
        "Programming Language :: Python :: 3",
    ],
)
