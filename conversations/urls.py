from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/new/", views.conversation_new, name="conversation_new"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename, name="conversation_rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="conversation_delete"),
    path("demo/v1/chat/completions", views.demo_completions, name="demo_chat_completions"),
    path("demo/v1/completions", views.demo_completions, name="demo_completions"),
    path("demo/v1/models", views.demo_models, name="demo_models"),
    path("healthz", views.healthz, name="healthz"),
]
