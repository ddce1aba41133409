"""the task queue's tables (procrastinate's schema), on PostgreSQL only

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-23 20:30:00

``TASKS=procrastinate`` keeps its queue in Postdesk's own PostgreSQL database. This puts the schema of
the procrastinate release pinned in pyproject.toml in place; a later procrastinate release with a
schema change comes with a migration here that runs its SQL migration files. SQLite has no queue
(``TASKS=inline``).
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    exists = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").scalar()
    if not exists:  # psycopg itself: the schema's "%" signs are no placeholders without parameters
        connection = bind.connection.dbapi_connection
        assert connection is not None
        connection.cursor().execute(SchemaManager.get_schema())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
        " procrastinate_workers CASCADE"
    )
    functions = bind.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.proname LIKE 'procrastinate%%' AND n.nspname = current_schema()"
    ).scalars()
    for signature in list(functions):
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {signature} CASCADE")
    bind.exec_driver_sql(
        "DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,"
        " procrastinate_job_status CASCADE"
    )
