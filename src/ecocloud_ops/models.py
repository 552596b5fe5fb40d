"""Import every model so ``Base.metadata`` is complete (Alembic, backup, tests)."""

from .audit.models import AuditEntry, AuditHead
from .auth.models import ApiToken, User, UserSession
from .automation.models import PlaybookEvent, PlaybookRun  # noqa: F401
from .cloud.models import (  # noqa: F401
    CapacitySample,
    CloudServiceRequest,
    PoolState,
    Tenant,
    TenantProject,
    Vm,
    VmRequest,
)
from .db import Base
from .dr.models import DataCenter, DrillFinding, DrillPlan, DrillRun, DrillStep, ProtectedService  # noqa: F401
from .jobs.models import Job, JobLogLine, WorkerHeartbeat
from .network.models import Device, DeviceRollup, MaintenanceWindow, Outage, OutagePeriod, PollCycle, PollerGap
from .policies.models import Policy
from .reports.models import AssessmentReport
from .servicedesk import attachments, kb, ratings  # noqa: F401  (Attachment, Article, Rating)
from .servicedesk.mail_intake import InboundMail
from .servicedesk.models import CalendarDay, CalendarYear, Ticket, TicketCounter, TicketEvent, TicketLink
from .servicedesk.teams import Notification, RosterShift, RoutingRule, Team, TicketSlaState, VendorContract  # noqa: F401
from .sites.models import Site, SiteEvent

__all__ = [
    "ApiToken", "AssessmentReport", "AuditEntry", "Device", "DeviceRollup", "MaintenanceWindow", "Outage",
    "OutagePeriod", "PollCycle", "PollerGap", "AuditHead", "Base", "Job", "JobLogLine", "Policy", "Site", "SiteEvent",
    "User", "UserSession", "WorkerHeartbeat", "CalendarDay", "CalendarYear", "Ticket", "TicketCounter", "TicketEvent",
    "TicketLink", "InboundMail",
]
