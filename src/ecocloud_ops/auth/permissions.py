"""Roles and permissions as data. Every console and API route declares one permission from here.

Later issues extend PERMISSIONS and ROLE_PERMISSIONS; the README table is generated from this
module (``ecocloud-ops roles --markdown``) and a test checks that the two agree.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"  # manages accounts and the platform; cannot touch the audit log
    SECURITY_ADMIN = "security_admin"  # security policy, lockouts, 2FA resets, sessions, tokens; reads audit
    AUDITOR = "auditor"  # reads everything, changes nothing
    CLOUD_OPS = "cloud_ops"  # tenants, pools and VMs
    NETWORK_OPS = "network_ops"  # sites, devices, polling
    ASSESSMENT_OFFICER = "assessment_officer"  # the monthly connectivity assessment
    DESK_AGENT = "desk_agent"  # the service desk
    DR_COORDINATOR = "dr_coordinator"  # DR plans and drills
    VENDOR_ENGINEER = "vendor_engineer"  # works the tickets assigned to their vendor team
    PROVINCIAL_STAFF = "provincial_staff"  # sees the subtree of their own site only


#: Roles that see the whole country; the others are limited to their own site's subtree.
NATIONAL_ROLES = frozenset(Role) - {Role.VENDOR_ENGINEER, Role.PROVINCIAL_STAFF}

PERMISSIONS: dict[str, str] = {
    "console.view": "open the console home page",
    "sites.read": "read the site tree (within scope)",
    "sites.manage": "load and change the site tree",
    "users.read": "read user accounts (within scope)",
    "users.manage": "create, disable and reset user accounts",
    "security.manage": "edit the security policy, unlock accounts, reset 2FA, end sessions, revoke tokens",
    "audit.read": "browse and verify the audit log",
    "audit.export": "export the signed audit log",
    "jobs.read": "see background jobs and their progress (within scope)",
    "jobs.manage": "start and cancel background jobs",
    "tokens.own": "manage one's own API tokens and profile",
    "cloud.read": "see pools, tenants and VMs",
    "cloud.manage": "onboard and offboard tenants, change quotas, provision and operate VMs, approve cloud requests",
    "network.read": "see devices, reachability and outages (within scope)",
    "network.manage": "change devices, import inventories, plan maintenance windows",
    "configs.read": "read device configuration backups and SSH check outputs (secrets masked)",
    "reports.read": "read connectivity assessment reports (within scope)",
    "reports.manage": "build and publish assessment reports, edit the assessment targets",
    "servicedesk.use": "file and follow service-desk tickets (within scope)",
    "servicedesk.work": "assign and work service-desk tickets (vendor engineers: their team's)",
    "servicedesk.manage": "edit SLA policies, teams, routing, rosters and the working calendar",
    "dr.read": "see DR centers, plans and drills",
    "dr.manage": "define data centers, protected services and drill plans",
    "dr.run": "start and abort drills, confirm manual steps, record findings",
}

_READ_ALL = {p for p in PERMISSIONS if p.endswith((".read", ".view"))}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(_READ_ALL - {"audit.read"} | {
        "sites.manage", "users.manage", "jobs.manage", "tokens.own", "servicedesk.use", "servicedesk.work",
        "servicedesk.manage"}),
    Role.SECURITY_ADMIN: frozenset({
        "console.view", "sites.read", "users.read", "security.manage", "audit.read", "audit.export",
        "jobs.read", "tokens.own"}),
    Role.AUDITOR: frozenset(_READ_ALL | {"audit.export", "tokens.own"}),
    Role.CLOUD_OPS: frozenset({
        "console.view", "sites.read", "jobs.read", "jobs.manage", "tokens.own", "cloud.read", "cloud.manage",
        "servicedesk.use", "servicedesk.work", "dr.read"}),
    Role.NETWORK_OPS: frozenset({
        "console.view", "sites.read", "sites.manage", "jobs.read", "jobs.manage", "tokens.own",
        "network.read", "network.manage", "configs.read", "reports.read", "servicedesk.use", "servicedesk.work",
        "dr.read"}),
    Role.ASSESSMENT_OFFICER: frozenset({
        "console.view", "sites.read", "jobs.read", "tokens.own", "network.read", "reports.read",
        "reports.manage"}),
    Role.DESK_AGENT: frozenset({
        "console.view", "sites.read", "users.read", "jobs.read", "tokens.own", "servicedesk.use",
        "servicedesk.work", "network.read"}),
    Role.DR_COORDINATOR: frozenset({
        "console.view", "sites.read", "jobs.read", "jobs.manage", "tokens.own", "dr.read", "dr.manage", "dr.run",
        "cloud.read", "servicedesk.use", "servicedesk.work"}),
    Role.VENDOR_ENGINEER: frozenset({"console.view", "sites.read", "tokens.own", "servicedesk.use",
                                     "servicedesk.work"}),
    Role.PROVINCIAL_STAFF: frozenset({
        "console.view", "sites.read", "users.read", "jobs.read", "tokens.own", "network.read",
        "reports.read", "servicedesk.use"}),
}

#: Marker for routes anyone may reach (login page, health check, static files).
PUBLIC = "public"
#: Marker for routes that need a login but no particular permission (logout, second factor).
AUTHENTICATED = "authenticated"


def has_permission(role: str, permission: str) -> bool:
    if permission == PUBLIC:
        return True
    try:
        r = Role(role)
    except ValueError:
        return False
    if permission == AUTHENTICATED:
        return True
    return permission in ROLE_PERMISSIONS[r]


def markdown_table() -> str:
    """The role -> permission table printed in the README."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for perm, what in PERMISSIONS.items():
        cells = ["✔" if perm in ROLE_PERMISSIONS[r] else "" for r in roles]
        lines.append(f"| `{perm}` — {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
