"""Bench-only: a Flask-Admin ModelView over lmsweb's users table (bench/peers.py).

    PEERS_DATABASE_URL=... gunicorn --workers 2 bench.peers_flaskadmin:app

Two views of the same model: the default pager (exact count), and `simple_list_pager =
True` (Flask-Admin's documented way to skip the count). Its own models, not lmsweb's, as a
shop adopting Flask-Admin would write them; Flask-Admin itself eager-loads the relationships
in `column_list` (`column_auto_select_related`), so a page is one query, not one per row.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, create_engine
from sqlalchemy.orm import DeclarativeBase, relationship, scoped_session, sessionmaker


class Base(DeclarativeBase):
    pass


user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("group_id", ForeignKey("groups.id"), primary_key=True),
)


class Location(Base):
    __tablename__ = "locations"
    id = Column(Integer, primary_key=True)
    name = Column(String(120))

    def __str__(self) -> str:
        return self.name


class Group(Base):
    __tablename__ = "groups"
    id = Column(Integer, primary_key=True)
    name = Column(String(120))

    def __str__(self) -> str:
        return self.name


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    email = Column(String(254))
    employee_id = Column(String(64))
    first_name = Column(String(100))
    last_name = Column(String(100))
    role = Column(String(16))
    status = Column(String(16))
    location_id = Column(ForeignKey("locations.id"))
    created_at = Column(DateTime)
    location = relationship(Location)
    groups = relationship(Group, secondary=user_groups, order_by=Group.name)


class UserView(ModelView):
    can_create = can_edit = can_delete = False
    page_size = 50
    named_filter_urls = True
    column_list = (
        "last_name",
        "first_name",
        "email",
        "employee_id",
        "location",
        "status",
        "role",
        "groups",
        "created_at",
    )
    column_searchable_list = ("first_name", "last_name", "email", "employee_id")
    column_filters = ("status", "role", "location.name", "groups.name")
    column_default_sort = [("last_name", False), ("first_name", False), ("id", False)]


class SimplePagerUserView(UserView):
    simple_list_pager = True


engine = create_engine(os.environ.get("PEERS_DATABASE_URL", "sqlite://"))
session = scoped_session(sessionmaker(engine))
app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("PEERS_SECRET", "bench-only-flask-admin-secret")
admin = Admin(app, name="Flask-Admin peer")
admin.add_view(UserView(User, session, name="Users", endpoint="users"))
admin.add_view(SimplePagerUserView(User, session, name="Users (simple pager)", endpoint="fast"))


@app.teardown_appcontext
def _remove_session(_exc):
    session.remove()
