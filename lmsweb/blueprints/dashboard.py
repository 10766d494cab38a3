"""Admin area: the dashboard (figures at a glance) and the training records, with export."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, SearchField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from .. import audit, compliance, figures, reports, scope
from ..extensions import db
from ..models import Course, Group, Location, utcnow
from ..params import in_range
from ..rendering import render, see_other, wants_partial
from ..security import org_wide, scoped
from ..xlsx import download, stream_workbook

bp = Blueprint("dashboard", __name__, url_prefix="/admin/dashboard")


class RecordFilterForm(FlaskForm):
    """The training-records filters: a GET form, so every filter is in the URL."""

    class Meta:
        csrf = False

    q = SearchField("Search user", filters=[lambda v: (v or "").strip()[:100]])
    course = SelectField("Course", choices=[], default="")
    location = SelectField("Location", choices=[], default="")
    group = SelectField("Group", choices=[], default="")
    state = SelectField(
        "State",
        choices=[SelectChoice("", "Any state")]
        + [SelectChoice(k, v) for k, v in reports.RECORD_STATES.items()],
        default="",
    )
    archived = SelectField(
        "Archived",
        choices=[
            SelectChoice("", "Archived or not"),
            SelectChoice("no", "Not archived"),
            SelectChoice("yes", "Archived only"),
        ],
        default="",
    )
    page = IntegerField("Page", validators=[Optional(), in_range()], default=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.course.choices = [SelectChoice("", "All courses")] + [
            SelectChoice(str(c.id), f"{c.code} {c.title}")
            for c in db.session.scalars(select(Course).order_by(Course.code))
        ]
        self.location.choices = [SelectChoice("", "All locations")] + [
            SelectChoice(str(x.id), x.name)
            for x in db.session.scalars(
                select(Location).where(scope.visible(Location)).order_by(Location.name)
            )
        ]
        self.group.choices = [SelectChoice("", "All groups")] + [
            SelectChoice(str(g.id), g.name)
            for g in db.session.scalars(
                select(Group).where(scope.visible(Group)).order_by(Group.name)
            )
        ]

    def to_filters(self) -> reports.RecordFilters:
        def number(value: str | None) -> int | None:
            return int(value) if value else None

        return reports.RecordFilters(
            q=self.q.data or "",
            course=number(self.course.data),
            location=number(self.location.data),
            group=number(self.group.data),
            state=self.state.data or "",
            archived=self.archived.data or "",
            page=self.page.data or 1,
        )

    def query_args(self, **overrides) -> dict[str, str]:
        """The filters as URL parameters (empty ones left out), for links and the export."""
        args = {
            name: str(self[name].data)
            for name in ("q", "course", "location", "group", "state", "archived")
            if self[name].data
        }
        args.update({k: str(v) for k, v in overrides.items()})
        return args


def _filter_form() -> RecordFilterForm:
    return RecordFilterForm(formdata=request.args, meta={"csrf": False})


@bp.route("")
@scoped
def index():
    """Figures at a glance, then the training records (the records partial to htmx)."""
    form = _filter_form()
    valid = form.validate()
    pagination = reports.records_page(form.to_filters()) if valid else None
    context = {"form": form, "pagination": pagination, "today": reports.today()}
    if not wants_partial():
        shown = figures.for_dashboard(current_user.scope_id, scope.current_rule())
        context.update(
            shown=shown,
            due_soon_days=reports.DUE_SOON_DAYS,
            dimensions=compliance.DIMENSIONS,
            figures=compliance.FIGURES,
            training_labels=compliance.TRAINING_LABELS,
        )
        if shown is not None:
            context.update(
                summary=shown.summary(),
                compliance=shown.by,
                compliance_totals=shown.totals,
                cycle=shown.cycle,
            )
    status = 200 if valid else 422
    return render("dashboard/index.html", "dashboard/_records.html", status, **context)


@bp.route("/figures", methods=["POST"])
@scoped
def refresh_figures():
    """Count the dashboard's figures of the administrator's people again: now, or (in a very
    large organisation) by the worker at its next pass."""
    if not figures.is_large():
        flash("The figures are counted on every visit: they are up to date.", "success")
    elif figures.recount_in_request():
        shown = figures.refresh(current_user.scope_id)
        db.session.commit()
        flash(f"Figures counted again in {shown.seconds:.1f} s.", "success")
    else:
        figures.request_recount(current_user.scope_id)
        db.session.commit()
        flash(
            "Recount asked of the worker: it reads every training record, which takes longer "
            "than a page may. Reload this page in a minute or two.",
            "success",
        )
    return see_other(url_for("dashboard.index"))


@bp.route("/records.xlsx")
@scoped
def export_records():
    """The training records matching the dashboard's filters, as an Excel workbook."""
    form = _filter_form()
    if not form.validate():
        errors = "; ".join(
            f"{form[name].label.text}: {' '.join(e)}" for name, e in form.errors.items()
        )
        return make_response(
            f"Invalid filters: {errors}", 422, {"Content-Type": "text/plain; charset=utf-8"}
        )
    name = f"training-records-{utcnow():%Y-%m-%d}.xlsx"
    return download(
        name,
        stream_workbook(
            "Training records",
            reports.EXPORT_HEADERS,
            reports.export_rows(form.to_filters()),
            widths=[16, 14, 30, 12, 16, 10, 12, 32, 12, 17, 11, 17, 17, 7, 8, 17, 22],
            kinds=reports.EXPORT_KINDS,
        ),
    )


@bp.route("/digest", methods=["POST"])
@org_wide
def digest():
    """Opt in to (digest=on) or out of (digest=off) the weekly compliance digest email."""
    choice = request.form.get("digest")
    if choice not in ("on", "off"):
        return make_response(
            "Choose digest=on or digest=off.", 422, {"Content-Type": "text/plain; charset=utf-8"}
        )
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    user.wants_digest = choice == "on"
    audit.record(
        "user.digest",
        target=user,
        summary=f"{'Subscribed to' if user.wants_digest else 'Unsubscribed from'} the weekly "
        "compliance digest",
    )
    db.session.commit()
    flash(
        "You will get the compliance figures by email every week."
        if user.wants_digest
        else "The weekly digest is stopped.",
        "success",
    )
    return see_other(url_for("dashboard.index"))
