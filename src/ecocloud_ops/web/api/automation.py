"""Automation API: the playbook catalog and playbook runs (start, list, read with events, cancel)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ...automation.catalog import MAX_TIMEOUT
from ...automation.service import PlaybookService, event_json, run_json
from ...errors import ValidationFailed
from ..security import services
from . import PAGE_QUERY, _page_args, operation, parse_body


def playbook_service() -> PlaybookService:
    return PlaybookService.of(services())


@operation("/playbooks", "GET", "Playbooks that can be run, with the schema of their extra variables", "jobs.read")
def list_playbooks() -> Any:
    return jsonify({"items": [p.as_dict() for p in playbook_service().playbooks()]})


class PlaybookRunStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: str = Field(max_length=64, description="a name from GET /playbooks")
    extra_vars: dict[str, Any] = Field(default_factory=dict, description="checked against the playbook's schema")
    limit: str | None = Field(None, max_length=500, description="host pattern (ansible --limit)")
    inventory: str | None = Field(None, max_length=64,
                                  description="a named inventory of playbooks/inventories (default: local)")
    timeout: int | None = Field(None, ge=1, le=MAX_TIMEOUT, description="seconds (default: the playbook's)")


@operation("/playbook-runs", "POST", "Start a playbook run (variables validated first); 202 with the queued run",
           "jobs.manage", body=PlaybookRunStart)
def start_playbook_run() -> Any:
    body = parse_body(PlaybookRunStart)
    svc = playbook_service()
    run = svc.start(g.actor, body.playbook, body.extra_vars, body.limit, inventory=body.inventory,
                    timeout=body.timeout)
    return jsonify(run_json(run, svc.job_of(run))), 202


@operation("/playbook-runs", "GET", "Playbook runs in the caller's scope, newest first", "jobs.read",
           query=[("status", "string", "new, pending, running, successful, failed, error, canceled or timeout"),
                  ("playbook", "string", "playbook name"), ("started_by", "string", "username"), *PAGE_QUERY])
def list_playbook_runs() -> Any:
    limit, offset = _page_args()
    a = request.args
    svc = playbook_service()
    rows, total = svc.search(g.scope, status=a.get("status") or None, playbook=a.get("playbook") or None,
                             started_by=a.get("started_by") or None, limit=limit, offset=offset)
    return jsonify({"total": total, "items": [run_json(r, svc.job_of(r)) for r in rows]})


@operation("/playbook-runs/<int:run_id>", "GET",
           "A run with its events after the sequence number 'after' (live views poll with the last one seen) "
           "and, once finished, its output", "jobs.read",
           query=[("after", "integer", "return events with seq greater than this (default 0)"),
                  ("limit", "integer", "events per page (1-5000, default 1000)")])
def get_playbook_run(run_id: int) -> Any:
    try:
        after = max(int(request.args.get("after", 0)), 0)
        limit = min(max(int(request.args.get("limit", 1000)), 1), 5000)
    except ValueError as exc:
        raise ValidationFailed("after and limit must be whole numbers",
                               details=[{"field": "after", "message": "not a number"}]) from exc
    svc = playbook_service()
    run = svc.get(run_id, g.scope)
    events = svc.events(run, after=after, limit=limit)
    return jsonify(run_json(run, svc.job_of(run)) | {
        "inventory": run.inventory, "stdout": run.stdout, "event_count": svc.event_count(run),
        "events": [event_json(e) for e in events],
        "next_after": events[-1].seq if events else after, "more": len(events) == limit})


@operation("/playbook-runs/<int:run_id>/cancel", "POST",
           "Cancel a run: a queued one at once, a running one within a second (it ends 'canceled')", "jobs.manage")
def cancel_playbook_run(run_id: int) -> Any:
    svc = playbook_service()
    run = svc.cancel(g.actor, svc.get(run_id, g.scope))
    return jsonify(run_json(run, svc.job_of(run)))
