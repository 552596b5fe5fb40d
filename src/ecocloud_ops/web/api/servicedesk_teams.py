"""API of the service desk's teams: teams, vendor contracts, routing rules, the on-duty roster."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ...servicedesk.teams import TeamService, contract_dict, rule_dict, shift_dict, team_dict
from ..security import services
from . import operation, parse_body


def _teams() -> TeamService:
    svc = services()
    return TeamService(svc.session, svc.audit)


@operation("/teams", "GET", "Teams with their on-duty engineers, contracts and the routing rules", "servicedesk.work")
def list_teams() -> Any:
    ts = _teams()
    now = dt.datetime.now(dt.UTC)
    return jsonify({"items": [team_dict(t) | {"on_duty": ts.on_duty(t.name, now),
                                              "contracts": [contract_dict(c) for c in ts.contracts(t.name)]}
                              for t in ts.teams()],
                    "rules": [rule_dict(r) for r in ts.rules()]})


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="as in users.team and tickets.team")
    display_name: str = Field(min_length=1, max_length=100)
    kind: str = Field("internal", pattern=r"^(internal|vendor)$")
    leader: str | None = None
    escalation_team: str | None = None
    email: str = ""


@operation("/teams", "POST", "Create a team", "servicedesk.manage", body=TeamCreate)
def create_team() -> Any:
    body = parse_body(TeamCreate)
    t = _teams().create_team(g.actor, **body.model_dump())
    return jsonify(team_dict(t)), 201


class ContractCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    vendor: str = Field(min_length=1, max_length=200)
    valid_from: str = Field(description="YYYY-MM-DD")
    valid_to: str = Field(description="YYYY-MM-DD")
    categories: list[str] = Field(default_factory=list)
    ola: dict[str, dict[str, int]] = Field(default_factory=dict,
                                           description='{"P1": {"response_minutes": 15, "resolve_minutes": 240}}')


@operation("/teams/<team>/contracts", "POST", "Add a vendor contract to a team", "servicedesk.manage",
           body=ContractCreate)
def add_contract(team: str) -> Any:
    body = parse_body(ContractCreate)
    c = _teams().add_contract(g.actor, team, **body.model_dump())
    return jsonify(contract_dict(c)), 201


class ShiftCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    starts_at: dt.datetime = Field(description="ISO 8601 with offset")
    ends_at: dt.datetime


@operation("/teams/<team>/shifts", "POST", "Put an engineer on duty for a team", "servicedesk.manage",
           body=ShiftCreate)
def add_shift(team: str) -> Any:
    body = parse_body(ShiftCreate)
    s = _teams().add_shift(g.actor, team, body.username, body.starts_at, body.ends_at)
    return jsonify(shift_dict(s)), 201


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field("*", description="a ticket category or *")
    province: str = Field("*", description="a province code or *")
    team: str = Field(min_length=1, max_length=64)


@operation("/routing-rules", "POST", "Route a category from a province to a team (replaces the same pair's rule)",
           "servicedesk.manage", body=RuleSet)
def set_rule() -> Any:
    body = parse_body(RuleSet)
    return jsonify(rule_dict(_teams().set_rule(g.actor, **body.model_dump()))), 201
