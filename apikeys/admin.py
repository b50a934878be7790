"""Staff door: the Django admin."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import User


@admin.register(User)
class OmikeysUserAdmin(UserAdmin):
    list_display = ("username", "email", "firebase_uid", "is_staff", "is_active")
    search_fields = ("username", "email", "firebase_uid")
    fieldsets = (*UserAdmin.fieldsets, ("Firebase", {"fields": ("firebase_uid",)}))
