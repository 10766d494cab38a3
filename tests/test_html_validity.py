"""Every full page is valid HTML to the Nu HTML Checker (vnu.jar from the vnu-jar npm package).

The pages come from the app's routes (tests/a11y_support.py), so a new page is validated
without being added here. Locally the test skips when Java or npm is missing; in CI it fails."""

from __future__ import annotations

import re
import shutil

from tests.a11y_support import (
    ERROR_PAGES,
    VNU_JAR,
    format_vnu,
    need,
    page_list,
    run_vnu,
    seed_pages,
)
from tests.conftest import login


def test_every_full_page_is_valid_html(app, make, tmp_path):
    need(shutil.which("java") is not None, "java is not installed (the Nu HTML Checker needs it)")
    need(
        VNU_JAR.exists() or shutil.which("npm") is not None,
        "npm is not installed (it installs the vnu-jar package) and tools/vnu has no vnu.jar",
    )
    seeds = seed_pages(app, make, users=60)
    clients = {"anonymous": app.test_client(), "learner": app.test_client()}
    clients["admin"] = app.test_client()
    login(clients["learner"], seeds.learner_email)
    login(clients["admin"], seeds.admin_email)

    files, names, problems = [], {}, []
    for n, check in enumerate(page_list(app, seeds, ERROR_PAGES)):
        response = clients[check.audience].get(check.url)
        if response.status_code != check.status:
            problems.append(f"{check}: status {response.status_code}, expected {check.status}")
            continue
        if response.mimetype != "text/html":
            problems.append(f"{check}: {response.mimetype} (list it in NON_HTML)")
            continue
        path = tmp_path / f"{n:03d}-{re.sub(r'[^a-z0-9]+', '-', check.endpoint)}.html"
        path.write_bytes(response.data)
        files.append(path)
        names[str(path)] = str(check)
    assert not problems, "\n".join(problems)
    assert files

    errors = run_vnu(files)
    assert not errors, f"{len(errors)} HTML errors:\n" + format_vnu(errors, names)
