from django.contrib import admin
from django.urls import path

from .admin import fast_site

urlpatterns = [path("admin/", admin.site.urls), path("fastadmin/", fast_site.urls)]
