"""pysaml2 attribute map that matches no real NameFormat: every attribute keeps its raw name and values.

pysaml2 refuses an empty map directory, and its built-in maps would rename urn:oid / claim-URI
attributes to friendly names; idm's mapping (``sso.attributes``) wants the names the IdP sent.
"""

MAP = {"identifier": "urn:idm:attrname-format:none", "fro": {}, "to": {}}
