"""App config for SAML 2.0 single sign-on (authentication only)."""

from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Single sign-on"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        def _forget(sender, request=None, **kwargs):
            # A local or SP-initiated sign-out: the IdP can no longer end this session.
            if request is not None and hasattr(request, "session"):
                from sso.logout import forget_session

                forget_session(request.session.session_key)

        user_logged_out.connect(_forget, dispatch_uid="sso.forget_session", weak=False)

        from django.contrib.auth.signals import user_logged_in

        from sso.first_sign_in import activate_after_sso_sign_in

        user_logged_in.connect(activate_after_sso_sign_in, dispatch_uid="sso.activate_invited", weak=False)
