"""Owner accounts: creation, password checks and password changes."""
from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..models import User


class AccountError(ValueError):
    """An account that cannot be created, with the reason."""


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return (email or "").strip().lower()


def find_user(email: str) -> User | None:
    """The owner with this email, if any."""
    return db.session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def create_user(email: str, password: str) -> User:
    """Create an owner account; raise AccountError if the email is taken or the password too short."""
    email = normalise_email(email)
    if not email or "@" not in email:
        raise AccountError("Enter a valid email address.")
    if len(password or "") < 8:
        raise AccountError("The password must have at least 8 characters.")
    if find_user(email) is not None:
        raise AccountError("An account with this email already exists.")
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def set_new_password(user: User, new: str) -> None:
    """Give an owner a new password (8 characters or more; AccountError otherwise): their other sessions end."""
    if len(new or "") < 8:
        raise AccountError("The new password must have at least 8 characters.")
    user.set_password(new)
    db.session.commit()


def change_password(user: User, current: str, new: str) -> None:
    """Change an owner's password once the current one is confirmed; AccountError says what is wrong."""
    if not user.check_password(current or ""):
        raise AccountError("The current password is wrong.")
    if new == current:
        raise AccountError("The new password is the same as the current one.")
    set_new_password(user, new)


def authenticate(email: str, password: str) -> User | None:
    """The owner if the password matches, else None."""
    user = find_user(email)
    return user if user is not None and user.check_password(password) else None
