"""Run ids in console paths: only the server-assigned format reaches the database (review N5).

On PostgreSQL a NUL in a query parameter is a ``DataError``; before the ``server_id`` converter,
/provisioning/runs/a%00b/ and its progress.json and journal.csv were 500s there.
"""

import pytest

from accounts.identity.types import Actor
from provisioning.journal import start_run
from provisioning.models import ProvisioningRun

NOT_IDS = ["a%00b", "%00", "nope", "0" * 31 + "%00", "A" * 32, "0" * 33]


@pytest.fixture
def run(db):
    return start_run(kind=ProvisioningRun.Kind.RULES_REAPPLY, actor=Actor.system("tests"))


@pytest.mark.parametrize("suffix", ["", "progress.json", "journal.csv"])
def test_run_pages_answer_404_for_text_that_is_not_a_run_id(admin_client, run, suffix):
    assert admin_client.get(f"/provisioning/runs/{run.run_id}/{suffix}").status_code == 200
    for bad in NOT_IDS:
        assert admin_client.get(f"/provisioning/runs/{bad}/{suffix}").status_code == 404, bad
