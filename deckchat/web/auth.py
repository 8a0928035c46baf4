"""Owner accounts: sign up, log in, change the password, log out."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..domain.accounts import AccountError, authenticate, change_password, create_user
from ..extensions import limiter
from .forms import ConfirmForm, LoginForm, PasswordChangeForm, SignupForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only follow same-site relative redirects after login."""
    # Browsers read a backslash as a slash and drop tabs and newlines, so "/\\evil.example" or "/\t/evil.example"
    # would leave the site: a path with either is not followed.
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(c) < 33 or ord(c) == 127 for c in target) and not urlsplit(target).netloc):
        return target
    return url_for("decks.list_decks")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def signup():
    """Create an owner account."""
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data)
        except AccountError as exc:
            form.email.errors.append(str(exc))
        else:
            login_user(user)
            return redirect(url_for("decks.list_decks"))
    return render_template("auth/signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("30 per minute", methods=["POST"])
def login():
    """Log an owner in."""
    if current_user.is_authenticated:
        return redirect(url_for("decks.list_decks"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Wrong email or password.")
    status = 401 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/account", methods=["GET", "POST"])
@login_required
@limiter.limit("10 per hour", methods=["POST"], key_func=lambda: f"account:{current_user.get_id()}",
               error_message="Too many tries. Wait a while, then try again.")
def account():
    """The owner's account: a new password, confirmed by the current one; other sessions end with it."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            user = current_user._get_current_object()  # noqa: SLF001 - the model, not the proxy
            change_password(user, form.current.data, form.new.data)
        except AccountError as exc:
            field = form.current if "current password is wrong" in str(exc) else form.new
            field.errors = [*field.errors, str(exc)]
        else:
            login_user(user)  # this session takes the new key; the others end
            flash("Password changed. Your other sessions are logged out.")
            return redirect(url_for("auth.account"), 303)
    return render_template("auth/account.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST with a CSRF token, so no other site can do it)."""
    if ConfirmForm().validate_on_submit():
        logout_user()
        flash("You are logged out.")
    return redirect(url_for("auth.login"))
