"""The sample data the benchmarks start from: the reference data and the records of
``data/samples`` in a benchmark's database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"

_FILES: tuple[tuple[Literal["complaints", "enforcement"], str], ...] = (
    ("complaints", "complaints.csv.gz"), ("enforcement", "enforcement.csv.gz"))


def load_samples(factory: sessionmaker[Session], settings: Settings,
                 importer: Callable[[], object] | None = None) -> None:
    """Load the reference data of ``settings``; unless complaints are stored already (a
    database kept from an earlier run), import the sample complaints and enforcement actions
    (or call ``importer`` instead)."""
    from sqlalchemy import func, select

    from service.ingest.pipeline import import_file
    from service.store.reference import load_reference
    from service.store.tables import Complaint

    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        have = s.scalar(select(func.count()).select_from(Complaint))
    if have:
        return
    if importer is not None:
        importer()
        return
    for kind, name in _FILES:
        import_file(session_factory=factory, kind=kind, path=SAMPLES / name, filename=name,
                    tz=settings.timezone)
