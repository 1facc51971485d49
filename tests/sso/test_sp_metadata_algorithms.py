"""Issue 7 §4: SP metadata advertises only the digest and signature algorithms idm accepts."""

from __future__ import annotations

from defusedxml import ElementTree

ALG = "urn:oasis:names:tc:SAML:metadata:algsupport"


def _advertised(client, provider) -> tuple[list[str], list[str]]:
    resp = client.get(f"/sso/{provider.pk}/metadata/")
    assert resp.status_code == 200
    root = ElementTree.fromstring(resp.content)
    digests = [el.get("Algorithm") for el in root.iter(f"{{{ALG}}}DigestMethod")]
    signing = [el.get("Algorithm") for el in root.iter(f"{{{ALG}}}SigningMethod")]
    return digests, signing


def test_metadata_lists_only_accepted_algorithms(client, provider):
    digests, signing = _advertised(client, provider)
    assert digests == ["http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384",
                       "http://www.w3.org/2001/04/xmlenc#sha512"]
    assert "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" in signing
    assert "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" in signing
    everything = " ".join(digests + signing).lower()
    for weak in ("md5", "sha1", "sha224", "ripemd", "dsa-sha"):
        assert weak not in everything.replace("ecdsa-sha", "ec-sha"), weak


def test_every_advertised_algorithm_is_accepted_by_validation(client, provider):
    from sso.validation import LEGACY_ALGORITHMS, STRONG_ALGORITHMS

    digests, signing = _advertised(client, provider)
    assert set(digests + signing) == set(STRONG_ALGORITHMS)
    provider.allow_legacy_algorithms = True
    provider.save()
    digests, signing = _advertised(client, provider)
    assert set(digests + signing) == set(STRONG_ALGORITHMS | LEGACY_ALGORITHMS)
    assert not any("md5" in alg for alg in digests + signing)
