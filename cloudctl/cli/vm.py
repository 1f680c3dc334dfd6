"""`cloudctl vm`: the virtual machines leases run as."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, Quiet, cloud, emit, emit_one, output_format, say
from cloudctl.domain import VMStatus

app = typer.Typer(help="List, show, export and migrate VMs.", no_args_is_help=True)
COLUMNS = [("name", "NAME"), ("lease", "LEASE"), ("node", "NODE"), ("where", "HOST/CLOUD"),
           ("state", "STATE"), ("want", "WANTS"), ("cpus", "CPUS"),
           ("memory_mib", "MEM MiB"), ("error", "ERROR")]


def _json(vm: Any) -> dict[str, Any]:
    from cloudctl.timefmt import iso

    return {"name": vm.name, "id": vm.id, "lease": vm.lease_id, "node": vm.node,
            "host": vm.host, "cloud": vm.cloud, "state": vm.state, "want": vm.want, "cpus": vm.cpus,
            "memory_mib": vm.memory_mib, "image": vm.image, "error": vm.error or None,
            "attempts": vm.attempts, "retry_at": iso(vm.retry_at),
            "save_path": vm.save_path, "disk_path": vm.disk_path,
            "updated": iso(vm.updated_at),
            "where": vm.host or (f"cloud:{vm.cloud}" if vm.cloud else None)}


@app.command("list")
def list_(
    ctx: typer.Context,
    lease: Annotated[int | None, typer.Option("--lease", metavar="ID", show_default=False,
                                              help="Only this lease's VMs.")] = None,
    host: Annotated[str | None, typer.Option("--host", metavar="NAME", show_default=False,
                                             help="Only VMs on this host.")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a",
                                       help="Include VMs that are gone.")] = False,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """VMs that exist or should (with --all, also those gone)."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        vms = c.vms.all(lease_id=lease, host=host)
    if not all_:
        vms = [vm for vm in vms if not (vm.state == VMStatus.GONE and vm.want == VMStatus.GONE)]
    emit([_json(vm) for vm in vms], COLUMNS, fmt, quiet, key="name")


@app.command("show")
def show(ctx: typer.Context,
         vm: Annotated[str, typer.Argument(metavar="NAME|ID", help="The VM's name or ID.",
                                           show_default=False)],
         output: Output = None, as_json: Json = False) -> None:
    """One VM and its story."""
    from cloudctl.timefmt import iso, local

    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        record, events = c.vms.show(vm)
    data = _json(record)
    data["events"] = [{"time": iso(e.time), "from": e.from_state, "to": e.to_state,
                       "reason": e.reason} for e in events]

    def story() -> None:
        for e in events:
            sys.stdout.write(f"  {local(e.time)}  {e.from_state or ''} -> {e.to_state or ''}"
                             f"  {e.reason}\n")

    emit_one(data, fmt, COLUMNS + [("attempts", "ATTEMPTS"), ("retry_at", "RETRY AT")],
             key="name", extra=story)


@app.command("export")
def export(ctx: typer.Context,
           vm: Annotated[str, typer.Argument(metavar="NAME|ID", help="The VM's name or ID.",
                                             show_default=False)],
           fmt: Annotated[str, typer.Option(
               "--format", metavar="xl|xml", show_default=False,
               help="xl: a Xen xl.cfg file (PV unless its Xen host's driver says hvm); "
                    "xml: the libvirt domain XML its host's driver defines.")],
           output: Annotated[Path | None, typer.Option(
               "--output", metavar="FILE", show_default=False,
               help="Write to FILE instead of stdout.")] = None) -> None:
    """A VM's definition as an xl.cfg file or libvirt domain XML."""
    from cloudctl.errors import InvalidInput

    with cloud(ctx) as c:
        text = c.vms.export(vm, fmt)
    text = text if text.endswith("\n") else text + "\n"  # domain XML comes without one
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    say(f"wrote {output}")


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    vm: Annotated[str, typer.Argument(help="The VM's name or id.", show_default=False)],
    host: Annotated[str, typer.Argument(help="The host to move it to.", show_default=False)],
    live: Annotated[bool, typer.Option(
        "--live", help="Keep the guest running while its memory is copied (both hosts' "
                       "drivers must declare live-migration). Without it the guest is saved "
                       "to a memory image and restored on HOST (cold).")] = False,
    output: Output = None, as_json: Json = False,
) -> None:
    """Move a running VM to another host for the rest of its lease. The schedule must have
    room for it there (else exit 6 with the reason); if the move fails the VM stays where it
    was, the schedule is unchanged and the failure is recorded (exit 5)."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        moved = c.vms.migrate(vm, host, live)
    if fmt == "table":
        say(f"vm {moved['vm']} moved {'live' if live else 'cold'} from {moved['from']} to "
            f"{moved['to']} in {moved['seconds']} s")
        return
    emit_one(moved, fmt, [(k, k) for k in moved], key="vm")
