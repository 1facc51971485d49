"""Console routes."""

from django.urls import path

from accounts import views
from accounts.credentials import urls as credential_urls
from accounts.mfa import views as mfa_views
from sso.views import SignInView

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", SignInView.as_view(), name="login"),  # username first, then password or SSO
    path("sign-in/verify/", mfa_views.verify, name="mfa_verify"),  # second step: TOTP code
    path("sign-in/enrol/", mfa_views.enrol, name="mfa_enrol"),  # second step without a device
    path("sign-out/", views.logout_view, name="logout"),
    path("account/", views.account, name="account"),
    path("account/password/", views.password_change, name="password_change"),
    path("account/two-factor/", mfa_views.account_setup, name="mfa_setup"),
    path("account/two-factor/off/", mfa_views.account_disable, name="mfa_disable"),
    # Users
    path("users/", views.user_list, name="user_list"),
    path("users/new/", views.user_create, name="user_create"),
    path("users/bulk-state/", views.user_bulk_state, name="user_bulk_state"),
    path("users/<int:pk>/", views.user_detail, name="user_detail"),
    path("users/<int:pk>/confirm-email/", views.user_confirm_email, name="user_confirm_email"),
    path("users/<int:pk>/edit/", views.user_edit, name="user_edit"),
    path("users/<int:pk>/move/", views.user_move, name="user_move"),
    path("users/<int:pk>/roles/", views.user_roles, name="user_roles"),
    path("users/<int:pk>/reset-two-factor/", mfa_views.user_reset, name="user_mfa_reset"),
    path("users/<int:pk>/<slug:action>/", views.user_state, name="user_state"),
    # Organizations
    path("orgs/", views.org_list, name="org_list"),
    path("orgs/<int:pk>/", views.org_detail, name="org_detail"),
    path("orgs/<int:pk>/new-child/", views.org_create, name="org_create"),
    path("orgs/<int:pk>/edit/", views.org_edit, name="org_edit"),
    path("orgs/<int:pk>/move/", views.org_move, name="org_move"),
    path("orgs/<int:pk>/settings/", views.org_settings, name="org_settings"),
    path("orgs/<int:pk>/<slug:action>/", views.org_action, name="org_action"),
    # Roles
    path("roles/", views.role_list, name="role_list"),
    path("roles/<slug:slug>/", views.role_detail, name="role_detail"),
    # Audit log
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    # Credentials: resets, invitations, required actions, recovery codes, unlock
    *credential_urls.urlpatterns,
]
