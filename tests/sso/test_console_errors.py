"""``sso.console_errors.plain_metadata_error``: metadata errors as sentences, never exception text."""

from __future__ import annotations

import requests

from sso.console_errors import plain_metadata_error
from sso.metadata import MetadataError


def chained(code: str, cause: Exception, message: str | None = None) -> MetadataError:
    """A ``MetadataError`` raised from ``cause`` the way ``sso.metadata.fetch`` raises it."""
    try:
        try:
            raise cause
        except Exception as inner:
            raise MetadataError(code, message or f"Could not download the metadata: {inner}.") from inner
    except MetadataError as exc:
        return exc


def http_error(status: int) -> requests.HTTPError:
    error = requests.HTTPError(f"{status} Client Error: for url: https://idp.example/m")
    error.response = requests.Response()
    error.response.status_code = status
    return error


URL = "https://idp.example/metadata"


def test_connection_refused():
    exc = chained("metadata_fetch", requests.ConnectionError("HTTPSConnectionPool(host='idp.example', port=443)"))
    assert plain_metadata_error(exc, url=URL) == (
        "idm could not connect to idp.example. Check the host name in the URL and that idm's server can reach it "
        "(firewall, proxy, DNS).")


def test_http_status():
    assert plain_metadata_error(chained("metadata_fetch", http_error(404)), url=URL) == (
        "idp.example answered HTTP 404 for the metadata URL. Check the URL (copy it from the identity provider's "
        "admin console) and that the metadata is published.")
    assert "HTTP 503" in plain_metadata_error(chained("metadata_fetch", http_error(503)), url=URL)


def test_http_error_without_response_is_generic():
    exc = chained("metadata_fetch", requests.HTTPError("boom"))
    assert plain_metadata_error(exc, url=URL) == (
        "idm could not download the metadata. Check the URL and that idm can reach the identity provider.")


def test_timeout_is_not_reported_as_a_refused_connection():
    # ConnectTimeout is both a Timeout and a ConnectionError: "did not answer in time" is the truth.
    for cause in (requests.ReadTimeout("x"), requests.ConnectTimeout("x")):
        assert plain_metadata_error(chained("metadata_fetch", cause), url=URL) == (
            "idp.example did not answer in time. Check the URL and that idm can reach the identity provider.")


def test_unknown_fetch_problem_and_no_url():
    text = plain_metadata_error(chained("metadata_fetch", requests.RequestException("weird")))
    assert text == "idm could not download the metadata. Check the URL and that idm can reach the identity provider."
    assert plain_metadata_error(chained("metadata_fetch", requests.ConnectionError("x"))).startswith(
        "idm could not connect to the identity provider.")


def test_tls():
    exc = chained("metadata_tls", requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"),
                  "The IdP's TLS certificate could not be verified: CERTIFICATE_VERIFY_FAILED.")
    text = plain_metadata_error(exc, url=URL)
    assert text.startswith("idm could not verify the TLS certificate of idp.example.")
    assert "CERTIFICATE_VERIFY_FAILED" not in text and '"verify TLS"' in text


def test_malformed_xml_hides_the_parser_text():
    exc = chained("metadata_malformed", ValueError("mismatched tag: line 1, column 9"),
                  "The metadata is not well-formed XML: mismatched tag: line 1, column 9.")
    text = plain_metadata_error(exc)
    assert text.startswith("The metadata is not well-formed XML.") and "mismatched" not in text


def test_other_messages_pass_through():
    plain = MetadataError("metadata_no_sso", "The IdP metadata lists no SingleSignOnService endpoint.")
    assert plain_metadata_error(plain) == "The IdP metadata lists no SingleSignOnService endpoint."
    assert plain_metadata_error(ValueError("just text")) == "just text"


def test_other_messages_lose_embedded_exception_text():
    exc = chained("metadata_other", RuntimeError("internal detail 0x1f"), "Something failed: internal detail 0x1f")
    assert plain_metadata_error(exc) == "Something failed:"


def test_exact_tls_and_malformed_sentences():
    tls = chained("metadata_tls", requests.exceptions.SSLError("x"))
    assert plain_metadata_error(tls, url=URL) == (
        "idm could not verify the TLS certificate of idp.example. The identity provider's certificate must chain "
        'to a trusted certificate authority; for a test IdP you can turn off "verify TLS".')
    assert plain_metadata_error(tls).startswith("idm could not verify the TLS certificate of the identity provider.")
    assert plain_metadata_error(chained("metadata_malformed", ValueError("x"), "m")) == (
        "The metadata is not well-formed XML. Download it again from the identity provider, or paste its "
        "metadata URL instead.")


def test_the_console_error_wrapping_a_metadata_error_is_read_through():
    """The views get ``ValidationFailed`` raised from ``MetadataError`` raised from the requests error."""
    from accounts.exceptions import ValidationFailed

    inner = chained("metadata_fetch", http_error(410))
    try:
        raise ValidationFailed(inner.code, inner.message, field="metadata") from inner
    except ValidationFailed as exc:
        outer = exc
    assert plain_metadata_error(outer, url=URL).startswith("idp.example answered HTTP 410 ")
    # A requests error that itself has a cause (urllib3's) is still the one reported.
    try:
        try:
            raise OSError("socket refused")
        except OSError as low:
            raise requests.ConnectionError("pool") from low
    except requests.ConnectionError as conn:
        deep = chained("metadata_fetch", conn)
    assert plain_metadata_error(deep, url=URL).startswith("idm could not connect to idp.example.")


def test_message_attribute_wins_over_str_and_unrelated_cause_is_kept():
    class Coded(Exception):
        code = "metadata_no_cert"
        message = "The IdP metadata has no signing certificate."

    assert plain_metadata_error(Coded("other text")) == "The IdP metadata has no signing certificate."
    exc = chained("metadata_other", RuntimeError("zzz"), "A plain sentence.")
    assert plain_metadata_error(exc) == "A plain sentence."
