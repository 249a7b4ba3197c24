"""Plugin defaults preloaded by pulpcore's dynaconf.

The only one: register our access-policy condition module next to pulpcore's (merged, not
replaced), so the nested exports endpoint can check permissions on the exporter in its URL.
"""

DRF_ACCESS_POLICY = {
    "dynaconf_merge_unique": True,
    "reusable_conditions": ["pulp_fedora_mirror.app.global_access_conditions"],
}
