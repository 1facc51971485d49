"""Bulk upload routes, mounted at /users/upload/ (namespace "bulk")."""

from django.urls import path

from accounts.bulk_upload import views

app_name = "bulk"

urlpatterns = [
    path("", views.upload_start, name="start"),
    path("export.csv", views.users_export, name="export"),
    path("template/<slug:operation>.csv", views.upload_template, name="template"),
    path("invite/<str:uidb64>/<str:token>/", views.invite, name="invite"),
    path("<uuid:pk>/", views.upload_detail, name="detail"),
    path("<uuid:pk>/confirm/", views.upload_confirm, name="confirm"),
    path("<uuid:pk>/cancel/", views.upload_cancel, name="cancel"),
    path("<uuid:pk>/status.json", views.upload_status, name="status"),
    path("<uuid:pk>/report.csv", views.upload_report, name="report"),
    path("<uuid:pk>/invitations.csv", views.invitations_csv, name="invitations_csv"),
    path("<uuid:pk>/invitations/send/", views.invitations_send, name="invitations_send"),
]
