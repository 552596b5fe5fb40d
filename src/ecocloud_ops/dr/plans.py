"""Drill plan steps: their schema, validation, and the default plan of each mode.

A step is a mapping::

    name:      what the step does (shown in the console and the report)
    kind:      playbook | health_check | wait | manual
    playbook:  (playbook) a playbook of playbooks/ ; extra_vars are checked against its schema
    extra_vars, limit
    target:    (health_check) service (the service address) | copy (the isolated copy of a test drill)
    seconds:   (wait) how long
    role:      (manual) the role whose user must confirm; instructions: what to check first
    timeout:   seconds (playbook, health_check, manual; default 300, 120, 3600)
    switch:    true on the one step whose start is the switch (the failover, or the copy's promotion):
               RTO runs from its start to the first successful health check after it, and the RPO
               markers are judged against it
    rollback:  a step (playbook | health_check | wait) that undoes this one, or null

A step that was started (completed or interrupted by an abort) gets its rollback run when the drill is
aborted or a later step fails, in reverse order.
"""

from __future__ import annotations

from typing import Any

from ..auth.permissions import Role, has_permission
from ..errors import ValidationFailed
from .models import DrillMode

STEP_KINDS = ("playbook", "health_check", "wait", "manual")
ROLLBACK_KINDS = ("playbook", "health_check", "wait")
TARGETS = ("service", "copy")
DEFAULT_TIMEOUT = {"playbook": 300, "health_check": 120, "manual": 3600, "wait": 0}
MAX_STEPS = 50
MAX_SECONDS = 86400
#: Purposes of a service's playbooks, used by the default plans.
PLAYBOOK_PURPOSES = ("precheck", "failover", "verify", "failback", "copy_build", "copy_promote", "copy_cleanup")
LAB_PLAYBOOKS = {"precheck": "dr_precheck", "failover": "dr_failover", "verify": "dr_verify",
                 "failback": "dr_failback", "copy_build": "dr_copy_build", "copy_promote": "dr_copy_promote",
                 "copy_cleanup": "dr_copy_cleanup"}


def confirming_roles() -> list[str]:
    """Roles a manual step may name: those that can see drills (confirming needs the role, not ``dr.run``)."""
    return [r.value for r in Role if has_permission(r.value, "dr.read")]


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def _int(step: dict[str, Any], key: str, field: str, low: int, high: int) -> int:
    value = step[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(f"{field}.{key}", f"a whole number from {low} to {high}")
    return value


def check_step(raw: Any, field: str, catalog: Any, *, rollback: bool = False) -> dict[str, Any]:
    """One step, normalized (defaults filled); ValidationFailed names the field (``steps[2].playbook``)."""
    if not isinstance(raw, dict):
        raise _fail(field, "must be a mapping with at least name and kind")
    allowed = {"name", "kind", "playbook", "extra_vars", "limit", "target", "seconds", "role", "instructions",
               "timeout", "switch", "rollback"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(f"{field}.{unknown[0]}", "unknown key; allowed: " + ", ".join(sorted(allowed)))
    kinds = ROLLBACK_KINDS if rollback else STEP_KINDS
    kind = str(raw.get("kind"))
    if kind not in kinds:
        raise _fail(f"{field}.kind", "one of " + ", ".join(kinds))
    name = raw.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise _fail(f"{field}.name", "1 to 200 characters")
    step: dict[str, Any] = {"name": name.strip(), "kind": kind}
    if kind == "playbook":
        from ..automation.catalog import check_limit

        spec = catalog.get(raw.get("playbook") or "")
        extra = raw.get("extra_vars") or {}
        if not isinstance(extra, dict):
            raise _fail(f"{field}.extra_vars", "must be a mapping")
        try:
            step["extra_vars"] = spec.validate(extra)
        except ValidationFailed as exc:
            first = exc.details[0] if exc.details else {"field": "extra_vars", "message": str(exc)}
            raise _fail(f"{field}.{first['field']}", first["message"]) from exc
        step |= {"playbook": spec.name, "limit": check_limit(raw.get("limit"))}
    if kind == "health_check":
        target = raw.get("target", "service")
        if target not in TARGETS:
            raise _fail(f"{field}.target", "service or copy")
        step["target"] = target
    if kind == "wait":
        step["seconds"] = _int({"seconds": raw.get("seconds")}, "seconds", field, 1, MAX_SECONDS)
    if kind == "manual":
        role = raw.get("role")
        confirmers = confirming_roles()
        if role not in confirmers:
            raise _fail(f"{field}.role", "one of " + ", ".join(confirmers) + " (roles that can see drills)")
        instructions = raw.get("instructions") or ""
        if not isinstance(instructions, str) or len(instructions) > 2000:
            raise _fail(f"{field}.instructions", "at most 2,000 characters")
        step |= {"role": role, "instructions": instructions}
    if kind != "wait":
        step["timeout"] = _int({"timeout": raw.get("timeout", DEFAULT_TIMEOUT[kind])}, "timeout", field, 1,
                               MAX_SECONDS)
    if not rollback:
        switch = raw.get("switch", False)
        if not isinstance(switch, bool):
            raise _fail(f"{field}.switch", "true or false")
        if switch and kind != "playbook":
            raise _fail(f"{field}.switch", "only a playbook step can be the switch")
        step["switch"] = switch
        rb = raw.get("rollback")
        step["rollback"] = None if rb is None else check_step(rb, f"{field}.rollback", catalog, rollback=True)
    return step


def check_steps(raw: Any, catalog: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        raise _fail("steps", f"a list of 1 to {MAX_STEPS} steps")
    steps = [check_step(s, f"steps[{i}]", catalog) for i, s in enumerate(raw)]
    switches = [i for i, s in enumerate(steps) if s["switch"]]
    if len(switches) > 1:
        raise _fail(f"steps[{switches[1]}].switch", "only one step can be the switch")
    return steps


def default_steps(mode: str, playbooks: dict[str, str]) -> list[dict[str, Any]]:
    """The standard plan of a mode, from a service's playbooks by purpose (lab names where missing)."""
    pb = LAB_PLAYBOOKS | {k: v for k, v in playbooks.items() if v}

    def play(name: str, purpose: str, extra: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return {"name": name, "kind": "playbook", "playbook": pb[purpose], "extra_vars": extra or {}} | kw

    cleanup = play("Remove the copy", "copy_cleanup")
    failback = play("Fail back to the production center", "failback")
    if mode == DrillMode.TEST:
        return [
            play("Check replication", "precheck"),
            play("Build a copy from the standby's data", "copy_build", rollback=cleanup),
            play("Promote the copy", "copy_promote", switch=True, rollback=cleanup),
            {"name": "Health check of the copy", "kind": "health_check", "target": "copy"},
            play("Remove the copy", "copy_cleanup"),
        ]
    if mode == DrillMode.PLANNED_MIGRATION:
        return [
            play("Check replication", "precheck"),
            play("Switch to the DR center (data synchronized first)", "failover", {"mode": "planned"},
                 switch=True, rollback=failback),
            {"name": "Health check at the DR center", "kind": "health_check", "target": "service"},
            play("Verify the DR center serves", "verify", {"serving": "standby"}, rollback=failback),
            failback,
        ]
    if mode == DrillMode.DISASTER:
        return [
            play("Take over at the DR center (primary assumed lost)", "failover", {"mode": "disaster"},
                 switch=True, rollback=failback),
            {"name": "Health check at the DR center", "kind": "health_check", "target": "service"},
            play("Verify the DR center serves", "verify", {"serving": "standby"}, rollback=failback),
            failback,
        ]
    raise _fail("mode", "one of " + ", ".join(DrillMode))
