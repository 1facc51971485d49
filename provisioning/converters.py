"""URL converters for server-assigned ids, so text that cannot be an id never reaches a query.

SCIM resource ids (``new_scim_id``) and run ids (``new_run_id``) are 32 lowercase hex digits; a bulk
upload's run takes the upload's id, a dashed UUID (``run_id``), so runs also accept that form. With a
plain ``<str:...>`` converter any path text reached the database: a NUL (``%00``) made PostgreSQL
raise ``DataError`` and the request a 500 (second review, N5). A converter that matches only the id
format sends everything else to the URL resolver's "no match" -- a 404 page on the console and the
SCIM catch-all's 404 error document under /scim/v2/ -- so every view behind these routes is covered.
"""

from django.urls import register_converter


class ServerIdConverter:
    """A server-assigned id: ``uuid4().hex`` (32 lowercase hex digits), nothing else."""

    regex = "[0-9a-f]{32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class RunIdConverter(ServerIdConverter):
    """A run id: ``uuid4().hex``, or the dashed UUID a bulk upload's run shares with the upload."""

    regex = "[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


register_converter(ServerIdConverter, "server_id")
register_converter(RunIdConverter, "run_id")
