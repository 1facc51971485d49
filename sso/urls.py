"""SSO routes, mounted at /sso/ (see idm/urls.py)."""

from django.urls import path

from sso import console_views, views

app_name = "sso"

urlpatterns = [
    path("signin/", views.SignInView.as_view(), name="signin"),
    path("signout/", views.SignOutView.as_view(), name="signout"),
    path("<int:provider_id>/login/", views.SsoLoginView.as_view(), name="login"),
    path("<int:provider_id>/acs/", views.AcsView.as_view(), name="acs"),
    path("<int:provider_id>/metadata/", views.MetadataView.as_view(), name="metadata"),
    path("<int:provider_id>/logout/", views.SsoLogoutView.as_view(), name="logout"),
    path("<int:provider_id>/slo/", views.SsoSloView.as_view(), name="slo"),
    # Console: Identity management -> Authentication
    path("providers/", console_views.provider_list, name="provider_list"),
    path("providers/add/", console_views.provider_edit, name="provider_add"),
    path("providers/new/", console_views.provider_setup_start, name="provider_setup_start"),
    path("providers/<int:pk>/setup/", console_views.provider_setup, name="provider_setup"),
    path("providers/<int:pk>/test/", console_views.provider_test, name="provider_test"),
    path("providers/<int:pk>/test/result/", console_views.provider_test_result, name="provider_test_result"),
    path("providers/<int:pk>/", console_views.provider_detail, name="provider_detail"),
    path("providers/<int:pk>/edit/", console_views.provider_edit, name="provider_edit"),
    path("providers/<int:pk>/refresh/", console_views.provider_refresh, name="provider_refresh"),
    path("providers/<int:pk>/confirm-trust/", console_views.provider_confirm_trust, name="provider_confirm_trust"),
    path("providers/<int:pk>/delete/", console_views.provider_delete, name="provider_delete"),
    path("providers/<int:pk>/break-glass/", console_views.provider_break_glass, name="provider_break_glass"),
    path("sp-key/<slug:action>/", console_views.sp_key_action, name="sp_key_action"),
    path("users/<int:user_pk>/links/<int:link_pk>/remove/", console_views.user_link_remove, name="user_link_remove"),
]
