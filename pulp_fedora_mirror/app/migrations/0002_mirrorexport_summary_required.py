"""Every MirrorExport has a summary: records of exports that never finished are removed.

Before this release the record was created when an export started and only deleted again on a
clean failure, so a worker killed mid-export (SIGKILL, OOM, power cut) left a record with
``summary: null`` that claimed an export that did not happen. Export tasks now save the record
only when they finish; this removes the leftovers and makes ``summary`` NOT NULL, so the
database itself refuses an unfinished record.
"""

from django.db import migrations, models


def delete_unfinished(apps, schema_editor):
    MirrorExport = apps.get_model("fedora_mirror", "MirrorExport")
    MirrorExport.objects.filter(summary__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fedora_mirror", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(delete_unfinished, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="mirrorexport",
            name="summary",
            field=models.JSONField(),
        ),
    ]
