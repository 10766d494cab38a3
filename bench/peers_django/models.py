"""Unmanaged models over lmsweb's tables; the router sends them to the "lms" database."""

from __future__ import annotations

from django.db import models


class Location(models.Model):
    name = models.CharField(max_length=120)

    class Meta:
        managed = False
        db_table = "locations"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Group(models.Model):
    name = models.CharField(max_length=120)

    class Meta:
        managed = False
        db_table = "groups"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(models.Model):
    email = models.CharField(max_length=254)
    employee_id = models.CharField("user ID", max_length=64, null=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=[("learner", "Learner"), ("admin", "Admin")])
    status = models.CharField(
        max_length=16,
        choices=[("pending", "Pending"), ("active", "Active"), ("archived", "Archived")],
    )
    location = models.ForeignKey(Location, models.DO_NOTHING, null=True)
    created_at = models.DateTimeField()
    # The auto-created link model reads user_groups (user_id, group_id) for joins and
    # prefetches; it never selects the id column the table does not have.
    groups = models.ManyToManyField(Group, db_table="user_groups")

    class Meta:
        managed = False
        db_table = "users"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class LmsRouter:
    """This app's models live in the lmsweb database; Django's own in "default"."""

    def db_for_read(self, model, **hints):
        return "lms" if model._meta.app_label == "peers_django" else None

    db_for_write = db_for_read

    def allow_migrate(self, db, app_label, **hints):
        return db == "default" and app_label != "peers_django"
