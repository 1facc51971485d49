"""SCIM providers: an optional HTTP basic credential (issue 9), stored as a Django password hash."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('provisioning', '0005_ldapauth_password_sign_in'),
    ]

    operations = [
        migrations.CreateModel(
            name='ScimBasicCredential',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('username', models.CharField(db_index=True, max_length=80)),
                ('password_hash', models.CharField(max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by_label', models.CharField(blank=True, max_length=255)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scim_basic_credentials', to='provisioning.source')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
    ]
