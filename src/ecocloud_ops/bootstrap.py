"""Composition root: Settings -> engine, keys, adapters, services. The CLI, the worker, the web
app and the tests all build the platform through :class:`Container`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .audit.service import AuditLog
from .auth.service import AuthService
from .cloud.pools import Connector
from .cloud.service import CloudService
from .config import Settings, load_settings
from .crypto import AuditSigner, SecretBox, read_or_create_secret_file
from .db import make_engine, make_session_factory, session_scope
from .dr.service import DRService
from .jobs.service import JobService
from .network.service import DeviceService
from .policies.service import PolicyService
from .reports.service import ReportService
from .servicedesk.service import TicketService
from .sites.service import SiteService


@dataclass
class Services:
    """The domain services bound to one database session (one unit of work)."""

    session: Session
    audit: AuditLog
    policies: PolicyService
    sites: SiteService
    auth: AuthService
    jobs: JobService
    devices: DeviceService
    reports: ReportService
    tickets: TicketService
    dr: DRService
    cloud: CloudService


class Container:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.settings.instance_dir.mkdir(parents=True, exist_ok=True)

    def configure_logging(self) -> None:
        """Process-wide logging for the CLI, server and worker (never called by tests)."""
        logging.basicConfig(level=self.settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        # netmiko's DEBUG log holds raw device output (unmasked configurations): never below INFO.
        logging.getLogger("netmiko").setLevel(max(logging.INFO, logging.getLogger().level))
        logging.getLogger("paramiko").setLevel(logging.WARNING)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.effective_database_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def signer(self) -> AuditSigner:
        return AuditSigner.from_file(self.settings.effective_audit_key_path)

    @cached_property
    def box(self) -> SecretBox:
        key = self.settings.data_key.encode() or read_or_create_secret_file(
            self.settings.instance_dir / "data.key", SecretBox.generate_key())
        return SecretBox(key)

    @cached_property
    def cloud(self) -> Connector:
        """The resource pools (settings) and an adapter per pool, connected on first use."""
        return Connector(self.settings)

    @cached_property
    def secret_key(self) -> str:
        return self.settings.secret_key or read_or_create_secret_file(
            self.settings.instance_dir / "secret_key").decode()

    def services(self, session: Session) -> Services:
        audit = AuditLog(session, self.signer)
        policies = PolicyService(session, audit)
        jobs = JobService(session, audit)
        tickets = TicketService(session, audit, policies, public_url=self.settings.public_url,
                                secret_key=lambda: self.secret_key)
        return Services(
            session=session, audit=audit, policies=policies,
            sites=SiteService(session, audit),
            auth=AuthService(session, audit, self.box, policies),
            jobs=jobs,
            devices=DeviceService(session, audit, self.box),
            reports=ReportService(session, audit, policies, self.settings.files_dir),
            tickets=tickets,
            dr=DRService(session, audit, jobs, self.box, tickets),
            cloud=CloudService(session, audit, jobs, self.box, lambda: self.cloud, tickets),
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[Services]:
        """Services over a fresh session; commits on success, rolls back on error."""
        with session_scope(self.session_factory) as session:
            yield self.services(session)

    def dispose(self) -> None:
        if "cloud" in self.__dict__:
            self.cloud.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
