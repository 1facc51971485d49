"""Credential routes, included into the console's ``accounts`` namespace."""

from django.urls import path

from accounts.credentials import views

urlpatterns = [
    path("sign-in/forgot/", views.forgot_password, name="password_forgot"),
    path("sign-in/reset/<str:uidb64>/<str:token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("invitation/<str:uidb64>/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("account/new-password/", views.required_password, name="required_password"),
    path("account/two-factor/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("users/<int:pk>/credentials/reset-link/", views.reset_link, name="user_reset_link"),
    path("users/<int:pk>/credentials/temporary-password/", views.temporary_password, name="user_temporary_password"),
    path("users/<int:pk>/credentials/invitation/", views.invitation, name="user_invitation"),
    path("users/<int:pk>/credentials/required-actions/", views.required_actions, name="user_required_actions"),
    path("users/<int:pk>/credentials/unlock/", views.unlock, name="user_unlock"),
    path("users/<int:pk>/sessions/<int:session_id>/end/", views.session_end, name="user_session_end"),
    path("users/<int:pk>/sessions/end-all/", views.sessions_end_all, name="user_sessions_end_all"),
]
