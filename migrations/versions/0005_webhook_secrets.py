"""webhook signing secrets on share links

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:40:00

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    """Add share_links.webhook_secret and give every link that already has a webhook its own secret."""
    with op.batch_alter_table('share_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.String(length=64), nullable=True))

    # A random secret per row (not a SQL default), so no two links share one; owners see it on the deck page.
    links = sa.table('share_links', sa.column('id', sa.Integer()), sa.column('webhook_url', sa.String()),
                     sa.column('webhook_secret', sa.String()))
    conn = op.get_bind()
    ids = conn.execute(
        sa.select(links.c.id).where(links.c.webhook_url.is_not(None), links.c.webhook_url != '')
    ).scalars().all()
    for link_id in ids:
        conn.execute(links.update().where(links.c.id == link_id).values(webhook_secret=secrets.token_hex(32)))


def downgrade():
    """Drop the secrets (deliveries go out unsigned again)."""
    with op.batch_alter_table('share_links', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')
