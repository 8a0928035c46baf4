"""WTForms forms: each carries a CSRF token through Flask-WTF."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, MultipleFileField
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, TextAreaField, URLField
from wtforms.validators import URL, DataRequired, Email, EqualTo, Length, Optional, Regexp


class LoginForm(FlaskForm):
    """Owner log-in."""

    # No format check at log-in: an account made from the CLI (the demo's is demo@deckchat.local, a special-use
    # domain the sign-up check refuses) must be able to log in; a wrong address simply fails as wrong.
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])


class SignupForm(FlaskForm):
    """Owner sign-up."""

    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=8, max=200, message="The password must have at least 8 characters.")])


class PasswordChangeForm(FlaskForm):
    """An owner's new password, confirmed by the current one."""

    current = PasswordField("Current password", validators=[DataRequired("Enter your current password.")],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField("New password (8 characters or more)", validators=[
        DataRequired("Enter a new password."),
        Length(min=8, max=200, message="The new password must have at least 8 characters.")],
        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("New password again", validators=[
        DataRequired("Enter the new password again."), EqualTo("new", message="The two new passwords differ.")],
        render_kw={"autocomplete": "new-password"})


# What each upload accepts, for the file pickers (the server checks the content regardless).
ACCEPT_SLIDES = ".pdf,.pptx,application/pdf,application/vnd.openxmlformats-officedocument.presentationml.presentation"
ACCEPT_TEXT = ".md,.markdown,.txt,text/markdown,text/plain"
ACCEPT_DOCUMENTS = ".md,.markdown,.txt,.pdf,text/markdown,text/plain,application/pdf"
TITLE_MAX = 200


class UploadForm(FlaskForm):
    """A new deck with its optional notes, FAQ and documents."""

    title = StringField("Title", validators=[Optional(), Length(max=TITLE_MAX)],
                        render_kw={"maxlength": TITLE_MAX, "placeholder": "Leave empty to use the title in the file"})
    slides = FileField("Slides (PDF or PPTX)", validators=[FileRequired("Choose a PDF or PPTX file.")],
                       render_kw={"accept": ACCEPT_SLIDES})
    notes = FileField("Speaker notes (Markdown, '## Slide N' headings)", render_kw={"accept": ACCEPT_TEXT})
    faq = FileField("FAQ (Markdown, one '##' heading per question)", render_kw={"accept": ACCEPT_TEXT})
    documents = MultipleFileField("Other documents (Markdown, text or PDF)", render_kw={"accept": ACCEPT_DOCUMENTS})


class ReplaceForm(FlaskForm):
    """A new version of a deck's slides, with speaker notes for a PDF if wanted."""

    slides = FileField("New slides (PDF or PPTX)", validators=[FileRequired("Choose a PDF or PPTX file.")],
                       render_kw={"accept": ACCEPT_SLIDES})
    notes = FileField("Speaker notes (optional; Markdown, '## Slide N' headings)", render_kw={"accept": ACCEPT_TEXT})


class RenameForm(FlaskForm):
    """A deck's new title (1 to 200 characters once stripped)."""

    title = StringField("Title", filters=[lambda value: value.strip() if isinstance(value, str) else value],
                        validators=[DataRequired("The title cannot be empty."),
                                    Length(max=TITLE_MAX, message=f"The title can be at most {TITLE_MAX} characters.")],
                        render_kw={"maxlength": TITLE_MAX, "required": True})


class LinkForm(FlaskForm):
    """A new share link."""

    # A label and a password field read as a log-in form to browsers: without these hints they may fill in the
    # owner's own account password, which would then be shared with investors as the link's.
    label = StringField("Label", validators=[Optional(), Length(max=120)], render_kw={"autocomplete": "off"})
    password = PasswordField("Password (optional)", validators=[Optional(), Length(max=200)],
                             render_kw={"autocomplete": "new-password"})
    expires_in = SelectField(
        "Expires", choices=[("", "Never"), ("1d", "In a day"), ("7d", "In a week"), ("30d", "In 30 days")],
        default="",
    )
    require_email = BooleanField("Ask for the visitor's email")
    allow_download = BooleanField("Allow download")
    webhook_url = URLField("Webhook when a visit ends (optional)", validators=[
        Optional(), Length(max=500), URL(require_tld=False, message="Enter an http:// or https:// URL."),
        Regexp(r"(?i)^https?://", message="The webhook must be an http:// or https:// URL.")])


class EditLinkForm(LinkForm):
    """Changes to an active share link's rules; its address stays."""

    password = PasswordField("New password (empty: keep the current one)", validators=[Optional(), Length(max=200)],
                             render_kw={"autocomplete": "new-password"})
    remove_password = BooleanField("No password")
    expires_in = SelectField(
        "Expires", choices=[("keep", "Keep as it is"), ("never", "Never"), ("1d", "In a day from now"),
                            ("7d", "In a week from now"), ("30d", "In 30 days from now")], default="keep",
    )


class UnlockForm(FlaskForm):
    """What a locked share link asks for: a password, an email, or both."""

    email = EmailField("Your email", validators=[Optional(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField("Password", validators=[Optional(), Length(max=200)])


class ConfirmForm(FlaskForm):
    """An empty form: a button that posts with a CSRF token (revoke, delete, log out)."""


class MaterialForm(FlaskForm):
    """New speaker notes, FAQ or documents for an existing deck."""

    notes = FileField("Speaker notes (Markdown, '## Slide N')", render_kw={"accept": ACCEPT_TEXT})
    faq = FileField("FAQ (Markdown; replaces the current FAQ)", render_kw={"accept": ACCEPT_TEXT})
    documents = MultipleFileField("Documents (Markdown, text or PDF)", render_kw={"accept": ACCEPT_DOCUMENTS})


class SlideNotesForm(FlaskForm):
    """One slide's speaker notes, edited on the deck page (empty removes them)."""

    notes = TextAreaField("Speaker notes")


class PersonaForm(FlaskForm):
    """The assistant's persona preamble."""

    persona = TextAreaField("Persona", validators=[Optional(), Length(max=4000)])


class PairForm(FlaskForm):
    """A guardrail (topic and reply) or an example (question and answer)."""

    first = StringField("Topic", validators=[DataRequired(), Length(max=300)])
    second = TextAreaField("Reply", validators=[DataRequired(), Length(max=2000)])
