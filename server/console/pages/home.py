"""The start page: who is logged in, their regions and the areas they may open. (The dashboard
work replaces this page's body with the monitoring summary.)"""

from __future__ import annotations

from flask import render_template

from server.console.blueprint import bp
from server.console.session import console_page, current_user


@bp.get("/")
@console_page()
def home() -> str:
    return render_template("console/home.html", actor=current_user())
