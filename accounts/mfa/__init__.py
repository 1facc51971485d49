"""Two-factor authentication (TOTP) for password sign-in.

``totp`` is the RFC 6238 algorithm, ``models`` the per-user device (encrypted secret), ``flow`` the
sign-in second step and the device writes (each audited), ``views`` the pages.
"""
