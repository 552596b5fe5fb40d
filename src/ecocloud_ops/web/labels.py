"""Display names of enumerations, translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ROLE_LABELS = {
    "admin": _l("System administrator"),
    "security_admin": _l("Security administrator"),
    "auditor": _l("Auditor"),
    "cloud_ops": _l("Cloud ops engineer"),
    "network_ops": _l("Network ops engineer"),
    "assessment_officer": _l("Assessment officer"),
    "desk_agent": _l("Service-desk agent"),
    "dr_coordinator": _l("DR coordinator"),
    "vendor_engineer": _l("Vendor engineer"),
    "provincial_staff": _l("Provincial / local staff"),
}
TIER_LABELS = {"ministry": _l("Ministry"), "province": _l("Province"), "city": _l("City"), "county": _l("County")}
STATE_LABELS = {"queued": _l("queued"), "running": _l("running"), "succeeded": _l("succeeded"),
                "failed": _l("failed"), "canceled": _l("canceled")}
DEVICE_STATUS_LABELS = {"up": _l("up"), "down": _l("down"), "unknown": _l("unknown"), "unpolled": _l("not polled yet"),
                        "unmonitored": _l("not monitored")}
CAUSE_LABELS = {"own": _l("own link"), "parent": _l("site above is down")}
LINK_TIER_LABELS = {"ministry_province": _l("Ministry → province"), "province_city": _l("Province → city"),
                    "city_county": _l("City → county")}
TICKET_TYPE_LABELS = {"incident": _l("Incident"), "service_request": _l("Service request"), "problem": _l("Problem"),
                      "change": _l("Change")}
TICKET_STATUS_LABELS = {"new": _l("New"), "assigned": _l("Assigned"), "in_progress": _l("In progress"),
                        "pending": _l("Pending"), "resolved": _l("Resolved"), "closed": _l("Closed"),
                        "canceled": _l("Canceled")}
TICKET_CATEGORY_LABELS = {"network_fault": _l("Network fault"), "cloud_resource": _l("Cloud resource"),
                          "account_access": _l("Account and access"), "security_incident": _l("Security incident"),
                          "consultation": _l("Consultation"), "other": _l("Other")}
IMPACT_LABELS = {1: _l("1 · whole agency or a province"), 2: _l("2 · a city or a system"),
                 3: _l("3 · a site or a group"), 4: _l("4 · one person")}
URGENCY_LABELS = {1: _l("1 · work stopped now"), 2: _l("2 · work hampered"), 3: _l("3 · can wait a day"),
                  4: _l("4 · no hurry")}
