"""Reading imports with their progress (the pairs each has, scored or not)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from criteria.imports.schemas import ImportRead
from storage import repository
from storage.models import Import


def _read(row: Import, mirrored: int, scored: int) -> ImportRead:
    return ImportRead(
        id=row.id,
        use_case=row.use_case,
        format=row.format,
        files=[str(name) for name in row.files],
        state=row.state,
        started_at=row.started_at,
        updated_at=row.updated_at,
        rate=row.rate,
        read=row.read,
        stored=row.stored,
        skipped=row.skipped,
        failed=row.failed,
        duplicates=row.duplicates,
        mirrored=mirrored,
        scored=scored,
        errors=[str(error) for error in row.errors],
    )


def list_imports(session: Session, use_case: str | None = None) -> list[ImportRead]:
    """Imports, newest first, with how many of their records are mirrored and scored."""
    rows = repository.list_imports(session, use_case)
    progress = repository.import_progress(session, [row.id for row in rows])
    return [_read(row, *progress[row.id]) for row in rows]


def get_import(session: Session, import_id: str) -> ImportRead | None:
    """One import with its progress, if it exists."""
    row = repository.get_import(session, import_id)
    if row is None:
        return None
    return _read(row, *repository.import_progress(session, [row.id])[row.id])
