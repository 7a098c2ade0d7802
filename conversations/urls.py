from django.urls import path

from .views import chat, demo, presets, public, sharing, teams, usage

urlpatterns = [
    path("", chat.home, name="home"),
    path("c/new/", chat.conversation_new, name="conversation_new"),
    path("c/<uuid:conversation_id>/", chat.conversation_detail, name="conversation"),
    path("c/<uuid:conversation_id>/rename/", chat.conversation_rename, name="conversation_rename"),
    path("c/<uuid:conversation_id>/delete/", chat.conversation_delete, name="conversation_delete"),
    path("c/<uuid:conversation_id>/export/", chat.conversation_export, name="conversation_export"),
    path("c/<uuid:conversation_id>/settings/", presets.conversation_settings, name="conversation_settings"),
    path("c/<uuid:conversation_id>/preset/", presets.conversation_preset_apply, name="conversation_preset_apply"),
    path("presets/", presets.preset_list, name="presets"),
    path("presets/new/", presets.preset_create, name="preset_create"),
    path("presets/<int:preset_id>/delete/", presets.preset_delete, name="preset_delete"),
    path("c/<uuid:conversation_id>/shares/", sharing.share_create, name="share_create"),
    path("c/<uuid:conversation_id>/shares/<int:share_id>/", sharing.share_change, name="share_change"),
    path("c/<uuid:conversation_id>/shares/<int:share_id>/revoke/", sharing.share_revoke, name="share_revoke"),
    path("c/<uuid:conversation_id>/links/", sharing.public_link_create, name="public_link_create"),
    path("c/<uuid:conversation_id>/links/<int:link_id>/refresh/", sharing.public_link_refresh, name="public_link_refresh"),
    path("c/<uuid:conversation_id>/links/<int:link_id>/delete/", sharing.public_link_delete, name="public_link_delete"),
    path("s/<str:token>/", public.public_link, name="public_link"),
    path("s/<str:token>/continue/", public.public_link_continue, name="public_link_continue"),
    path("usage/", usage.my_usage, name="my_usage"),
    path("teams/", teams.team_list, name="teams"),
    path("teams/<int:team_id>/", teams.team_detail, name="team"),
    path("teams/<int:team_id>/members/", teams.team_member_add, name="team_member_add"),
    path("teams/<int:team_id>/members/<int:user_id>/remove/", teams.team_member_remove, name="team_member_remove"),
    path("demo/v1/chat/completions", demo.demo_completions, name="demo_chat_completions"),
    path("demo/v1/completions", demo.demo_completions, name="demo_completions"),
    path("demo/v1/models", demo.demo_models, name="demo_models"),
    path("healthz", chat.healthz, name="healthz"),
]
