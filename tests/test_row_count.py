"""After a row action in a filtered view the row leaves if it no longer matches, and
"N users match" is re-sent out of band, so the list never shows a stale count."""

from __future__ import annotations

from tests.conftest import HX


def _from_list(query: str) -> dict:
    return {**HX, "HX-Current-URL": f"http://localhost/admin/users?{query}"}


def test_approve_in_the_pending_view_drops_the_row_and_updates_the_count(admin_client, make):
    a = make.user(status="pending", first_name="Pia")
    make.user(status="pending", first_name="Paz")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve",
        data={"next": "/admin/users?status=pending"},
        headers=_from_list("status=pending"),
    )
    assert response.status_code == 200
    assert f'id="user-{a.id}"' not in response.text
    assert 'id="users-count"' in response.text and "data-hx-swap-oob" in response.text
    assert "1 user matches these filters" in response.text


def test_a_row_that_still_matches_stays_and_the_count_follows(admin_client, make):
    a = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve", data={"next": "/admin/users"}, headers=_from_list("")
    )
    assert f'id="user-{a.id}"' in response.text
    assert "2 users</p>" in response.text  # the administrator and this user


def test_from_elsewhere_only_the_row_comes_back(admin_client, make):
    a = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve",
        data={"next": "/admin/users?status=pending"},
        headers={**HX, "HX-Current-URL": f"http://localhost/admin/users/{a.id}"},
    )
    assert f'id="user-{a.id}"' in response.text
    assert 'id="users-count"' not in response.text
