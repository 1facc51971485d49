"""The credential lifecycle around a user's password and second factor.

``models`` (required actions, recovery codes, invitations, sign-in locks), ``tokens`` (single-use,
short-lived links), ``service`` (every credential write, each audited; password changes go through
``accounts.identity`` so its policy guards apply), ``views``/``urls`` (pages), ``middleware``
(required actions at sign-in).
"""
