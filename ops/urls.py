"""Operations routes: /healthz, /readyz, /metrics (no sign-in) and the console's operations pages."""

from django.urls import path

from ops import views

app_name = "ops"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
