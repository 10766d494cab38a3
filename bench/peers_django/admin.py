"""The Users changelist, twice: with the exact count Django shows by default, and with
`show_full_result_count = False` (its documented way to skip the second count)."""

from __future__ import annotations

from django.contrib import admin

from .models import User


class UserAdmin(admin.ModelAdmin):
    list_display = (
        "last_name",
        "first_name",
        "email",
        "employee_id",
        "location",
        "status",
        "role",
        "group_names",
        "created_at",
    )
    list_filter = ("status", "role", "location", "groups")
    search_fields = ("first_name", "last_name", "email", "employee_id")
    list_select_related = ("location",)
    list_per_page = 50
    ordering = ("last_name", "first_name", "id")
    show_full_result_count = True

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="Groups")
    def group_names(self, user):
        return ", ".join(group.name for group in user.groups.all())


class FastUserAdmin(UserAdmin):
    show_full_result_count = False


admin.site.register(User, UserAdmin)
fast_site = admin.AdminSite(name="fastadmin")
fast_site.register(User, FastUserAdmin)
