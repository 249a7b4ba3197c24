"""The browsable home page: catalog, repository pages and setup help (docs/ui.md).

``summary`` turns a metadata snapshot into what the pages show (once per snapshot);
``crane_fedora.views.ui`` renders it with the templates under ``crane_fedora/templates/ui``.
"""
