# Issue 8 (provisioning core): the owning source of a user or directory group becomes a real
# reference to provisioning.Source. Minimal accounts-side change: one nullable FK on UserProfile and
# one on DirectoryGroup, plus a data migration that turns each distinct (source, source_provider)
# string pair of SCIM/LDAP-owned rows into a Source row and points the rows at it. The old string
# columns stay (the service still writes them) until the identity service reads owner_source.

import django.db.models.deletion
from django.db import migrations, models


PROVIDER_KINDS = ("scim", "ldap")


def _source_for(Source, cache, kind, provider):
    from django.utils.text import slugify

    key = (kind, provider)
    if key not in cache:
        label = provider or f"{kind.upper()} source"
        slug = slugify(f"{kind}-{provider}" if provider else kind)[:60] or kind
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            source = Source.objects.create(
                slug=slug, name=f"{label} ({kind})" if Source.objects.filter(name=label).exists() else label,
                kind=kind, org_mode="unmanaged",
            )
        cache[key] = source
    return cache[key]


def link_owners(apps, schema_editor):
    Source = apps.get_model("provisioning", "Source")
    UserProfile = apps.get_model("accounts", "UserProfile")
    DirectoryGroup = apps.get_model("accounts", "DirectoryGroup")
    cache = {}
    for model, kind_field, provider_field in ((UserProfile, "source", "source_provider"),
                                              (DirectoryGroup, "source", "provider")):
        pairs = (model.objects.filter(**{f"{kind_field}__in": PROVIDER_KINDS})
                 .values_list(kind_field, provider_field).distinct())
        for kind, provider in list(pairs):
            source = _source_for(Source, cache, kind, provider)
            model.objects.filter(**{kind_field: kind, provider_field: provider}).update(owner_source=source)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_totp'),
        ('provisioning', '0001_prov_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='directorygroup',
            name='owner_source',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='groups', to='provisioning.source'),
        ),
        migrations.AddField(
            model_name='userprofile',
            name='owner_source',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='profiles', to='provisioning.source'),
        ),
        migrations.RunPython(link_owners, migrations.RunPython.noop),
    ]
