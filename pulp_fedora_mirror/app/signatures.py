"""Promotion carries signatures: pick a source version's signature content for a set of manifests.

pulp-container's ``copy_tags``/``copy_manifests`` (``recursive_add_content``) copy tags, manifests
and blobs but never ``ManifestSignature`` content, and no pulp-container endpoint adds signatures
to a (non-push) repository. So a promoted image arrived unsigned in the stable repository and
its export had nothing to publish. :func:`signature_content` is the one selection rule (used by
the ``carry_signatures`` task here, and meant for any release task that copies content itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q
from pulp_container.app.models import Blob, ContainerRepository, Manifest, ManifestSignature, Tag
from pulpcore.plugin.models import Content, RepositoryVersion


def sigstore_tag_names(digests: Iterable[str]) -> list[str]:
    """``sha256-<hex>.sig``: the tags sigstore (cosign) attaches its signature manifests under."""
    return sorted(f"sha256-{d.split(':', 1)[1]}.sig" for d in digests if d.startswith("sha256:"))


def signature_content(source_version: RepositoryVersion, manifest_digests: Iterable[str]) -> list[Any]:
    """Content pks in ``source_version`` that sign the manifests with ``manifest_digests``.

    Simple-signing ``ManifestSignature`` content of those manifests, and sigstore attachment tags
    (``sha256-<hex>.sig``) of those manifests with the manifests they tag and their blobs. A few
    queries whatever the number of manifests; nothing is loaded as model instances.
    """
    digests = set(manifest_digests)
    content = source_version.content
    pks: list[Any] = list(
        ManifestSignature.objects.filter(pk__in=content, signed_manifest__digest__in=digests).values_list(
            "pk", flat=True
        )
    )
    tags = Tag.objects.filter(pk__in=content, name__in=sigstore_tag_names(digests))
    tag_pks = list(tags.values_list("pk", flat=True))
    if tag_pks:
        manifests = Manifest.objects.filter(pk__in=content).filter(pk__in=tags.values("tagged_manifest"))
        listed = Manifest.objects.filter(pk__in=content).filter(pk__in=manifests.values("listed_manifests"))
        every = Manifest.objects.filter(Q(pk__in=manifests.values("pk")) | Q(pk__in=listed.values("pk")))
        blobs = Blob.objects.filter(pk__in=content).filter(
            Q(pk__in=every.values("blobs")) | Q(pk__in=every.values("config_blob"))
        )
        pks += tag_pks
        pks += list(every.values_list("pk", flat=True))
        pks += list(blobs.values_list("pk", flat=True))
    return pks


def carry_signatures(source_version_pk: str, repository_pk: str) -> str | None:
    """Task: add to ``repository`` the source version's signatures of every manifest it holds.

    Run after a promotion (``copy_tags``) of the same source: every manifest of the destination's
    latest version gets the signature content the source has for it. Idempotent: creates a new
    version only when something is missing; returns its pk (None when nothing changed).
    """
    source = RepositoryVersion.objects.get(pk=source_version_pk)
    repository = ContainerRepository.objects.get(pk=repository_pk)
    latest = repository.latest_version()
    digests = Manifest.objects.filter(pk__in=latest.content).values_list("digest", flat=True)
    wanted = set(signature_content(source, digests))
    present = set(latest.content.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = wanted - present
    if not missing:
        return None
    new_tags = Tag.objects.filter(pk__in=missing).values_list("name", flat=True)
    with repository.new_version() as version:
        # a tag name is unique in a version: a re-signed image's .sig tag replaces the old one
        version.remove_content(Tag.objects.filter(pk__in=latest.content, name__in=new_tags))
        version.add_content(Content.objects.filter(pk__in=missing))
    return str(version.pk)
