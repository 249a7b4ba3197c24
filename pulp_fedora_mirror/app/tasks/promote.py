"""The promote task: one build, several tags, one new repository version (Bodhi's tag scheme).

Bodhi's composer copies each build by digest to ``<version>-<release>``, ``<version>`` and
``latest`` (or ``testing``). pulp-container's ``copy_tags``/``tag`` would need one task (and one
repository version) per tag, and a reader could see ``latest`` moved while ``41`` had not. This
task resolves everything first, then makes all changes inside one ``new_version()`` block: pulpcore
creates the version only if the block finishes, so a failure leaves the destination unchanged.

Modelled on pulp-container's ``recursive_add_content`` (content closure) and ``tag_image``
(get-or-create the tag, replace same-name tags).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from pulp_container.app.models import Blob, ContainerRepository, Manifest, ManifestSignature, Tag
from pulpcore.plugin.models import CreatedResource, RepositoryVersion
from pulpcore.plugin.util import get_domain, get_url


def cosign_signature_tag(digest: str) -> str:
    """The tag sigstore/cosign attaches a manifest's signature under: ``sha256-<hex>.sig``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


def manifest_closure(roots: QuerySet[Manifest] | list[Manifest], version: RepositoryVersion) -> set[Manifest]:
    """``roots`` plus every manifest they list (recursively), as far as ``version`` holds them."""
    in_version = version.content
    seen: dict[str, Manifest] = {str(m.pk): m for m in roots}
    todo = list(seen)
    while todo:
        listed = Manifest.objects.filter(pk__in=todo).values("listed_manifests")
        children = Manifest.objects.filter(pk__in=in_version).filter(pk__in=listed)
        todo = []
        for child in children.exclude(pk__in=list(seen)):
            seen[str(child.pk)] = child
            todo.append(str(child.pk))
    return set(seen.values())


def blobs_of(manifests: set[Manifest]) -> QuerySet[Blob]:
    """Layers and config blobs of ``manifests``."""
    pks = [m.pk for m in manifests]
    return Blob.objects.filter(
        pk__in=Manifest.objects.filter(pk__in=pks).values("blobs")
    ) | Blob.objects.filter(pk__in=Manifest.objects.filter(pk__in=pks).values("config_blob"))


def signature_content(version: RepositoryVersion, manifests: set[Manifest]) -> dict[str, Any]:
    """What carries the signatures of ``manifests`` in ``version`` (issue 9 item 2).

    - pulp-container ``ManifestSignature`` content (atomic/simple signing, served at
      ``/extensions/v2/…/signatures/``) whose ``signed_manifest`` is one of ``manifests``;
    - sigstore (cosign) attachments: the tag ``sha256-<hex>.sig`` of each manifest, with the
      signature manifest it points at and that manifest's blobs.

    Only what the source version holds is carried; a build without signatures promotes as is.
    """
    in_version = version.content
    signatures = ManifestSignature.objects.filter(
        pk__in=in_version, signed_manifest__in=[m.pk for m in manifests]
    )
    sig_tags = Tag.objects.filter(
        pk__in=in_version, name__in=[cosign_signature_tag(m.digest) for m in manifests]
    ).select_related("tagged_manifest")
    sig_manifests = {t.tagged_manifest for t in sig_tags}
    return {"signatures": signatures, "tags": list(sig_tags), "manifests": sig_manifests}


def resolve_build(version: RepositoryVersion, tag: str | None, digest: str | None) -> Manifest:
    """The manifest (list) named by ``tag`` or ``digest`` in ``version``; ValueError if absent."""
    in_version = version.content
    if tag is not None:
        found = Tag.objects.filter(pk__in=in_version, name=tag).select_related("tagged_manifest").first()
        if found is None:
            raise ValueError(f"tag '{tag}' is not in {version.repository.name} version {version.number}")
        return found.tagged_manifest
    found_m = Manifest.objects.filter(pk__in=in_version, digest=digest).first()
    if found_m is None:
        raise ValueError(f"manifest '{digest}' is not in {version.repository.name} version {version.number}")
    return found_m


def promote_build(
    source_version_pk: str,
    destination_pk: str,
    tags: list[str],
    digest: str | None = None,
    aliases: list[str] | None = None,
) -> dict[str, Any]:
    """Copy builds from a source version into the destination under all their tags, atomically.

    ``tags``: source tag names, each copied under its own name. ``digest``: a manifest (list) of
    the source version, copied by digest. ``aliases``: more tag names for the single build named
    by ``digest`` or by the only entry of ``tags`` (the serializer enforces that). Everything the
    builds reference (listed manifests, layers, config blobs) and their signatures come along;
    destination tags of the same names are replaced. No change → no new version.
    """
    source = RepositoryVersion.objects.select_related("repository").get(pk=source_version_pk)
    destination = ContainerRepository.objects.get(pk=destination_pk)
    wanted: dict[str, Manifest] = {}  # destination tag name -> manifest
    for name in tags:
        wanted[name] = resolve_build(source, name, None)
    roots = {m.pk: m for m in wanted.values()}
    if digest is not None:
        build = resolve_build(source, None, digest)
        roots[build.pk] = build
    elif aliases:
        build = wanted[tags[0]]
    for alias in aliases or []:
        wanted[alias] = build
    manifests = manifest_closure(list(roots.values()), source)
    signed = signature_content(source, manifests)
    all_manifests = manifests | signed["manifests"]

    domain = get_domain()
    new_tags = []
    for name, manifest in wanted.items():
        tag, created = Tag.objects.get_or_create(name=name, tagged_manifest=manifest, _pulp_domain=domain)
        if created:
            CreatedResource(content_object=tag).save()
        new_tags.append(tag)
    tag_names = [t.name for t in new_tags] + [t.name for t in signed["tags"]]
    latest = destination.latest_version()
    with destination.new_version() as new_version:
        if latest is not None:
            replaced = Tag.objects.filter(pk__in=latest.content, name__in=tag_names).exclude(
                pk__in=[t.pk for t in new_tags + signed["tags"]]
            )
            new_version.remove_content(replaced)
        new_version.add_content(Tag.objects.filter(pk__in=[t.pk for t in new_tags + signed["tags"]]))
        new_version.add_content(Manifest.objects.filter(pk__in=[m.pk for m in all_manifests]))
        new_version.add_content(blobs_of(all_manifests))
        new_version.add_content(signed["signatures"])
    after = destination.latest_version()
    changed = latest is None or after.number != latest.number
    return {
        # The new version's href (None: nothing changed), also in the task's created_resources;
        # here because pulp-glue hands callers a task's result instead of the task when it has one.
        "repository_version": f"{get_url(destination)}versions/{after.number}/" if changed else None,
        "tags": {name: m.digest for name, m in wanted.items()},
        "manifests": len(all_manifests),
        "signatures": signed["signatures"].count(),
        "sigstore_tags": sorted(t.name for t in signed["tags"]),
    }
