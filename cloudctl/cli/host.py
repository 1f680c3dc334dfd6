"""`cloudctl host`: the inventory of physical hosts."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from cloudctl.cli.common import (
    Json,
    Output,
    Quiet,
    cloud,
    emit,
    emit_one,
    local_times,
    output_format,
    say,
)

app = typer.Typer(help="Add, list, enable, disable and remove hosts.", no_args_is_help=True)

COLUMNS = [("name", "NAME"), ("cpus", "CPUS"), ("memory_mib", "MEM MiB"),
           ("driver", "DRIVER"), ("enabled", "ENABLED"), ("status", "STATUS"),
           ("vms_running", "VMS"), ("cpus_used", "CPUS USED"),
           ("memory_used_mib", "MEM USED"), ("leases", "LEASES")]
Name = Annotated[str, typer.Argument(help="The host's name.", show_default=False)]


def _json(view: dict[str, Any]) -> dict[str, Any]:
    from cloudctl.timefmt import iso

    return {**view, "added": iso(view["added"])}


@app.command("add")
def add(
    ctx: typer.Context,
    name: Name,
    cpus: Annotated[int, typer.Option("--cpus", metavar="N", help="Whole CPUs the host offers.",
                                      show_default=False)],
    memory: Annotated[int, typer.Option("--memory", metavar="MIB",
                                        help="Memory the host offers, in MiB.",
                                        show_default=False)],
    disk: Annotated[int | None, typer.Option("--disk", metavar="GIB",
                                             help="Disk for VM images, GiB (default 100).",
                                             show_default=False)] = None,
    driver: Annotated[str | None, typer.Option(
        "--driver", metavar="NAME",
        help="Hypervisor driver: test (libvirt's test driver, the default), qemu, kvm, or a "
             "plug-in's name.", show_default=False)] = None,
    uri: Annotated[str | None, typer.Option(
        "--uri", metavar="URI",
        help="libvirt URI of the host, e.g. qemu+ssh://root@node1/system. Default: a private "
             "test:/// node file for the test driver, qemu:///system otherwise.",
        show_default=False)] = None,
    ssh: Annotated[str | None, typer.Option(
        "--ssh", metavar="USER@HOST[:PORT]", show_default=False,
        help="Send images to the host over SSH (SFTP) into its image cache and make VM "
             "disks there. Its host key must be in --known-hosts.")] = None,
    image_dir: Annotated[str | None, typer.Option(
        "--image-dir", metavar="DIR", show_default=False,
        help="With --ssh: the host's image cache directory (default "
             "/var/lib/cloudctl/images; VM disks go to its sibling 'disks').")] = None,
    cache_limit: Annotated[str | None, typer.Option(
        "--cache-limit", metavar="SIZE", show_default=False,
        help="With --ssh: most bytes of images kept on the host, e.g. 20G; least recently "
             "used images not in use are evicted first.")] = None,
    key_file: Annotated[str | None, typer.Option(
        "--key-file", metavar="FILE", show_default=False,
        help="With --ssh: private key to log in with.")] = None,
    known_hosts: Annotated[str | None, typer.Option(
        "--known-hosts", metavar="FILE", show_default=False,
        help="With --ssh: known_hosts file holding the host's key (default "
             "~/.ssh/known_hosts); unknown keys are refused.")] = None,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Register a host. Its driver (and with --ssh, its SSH server) must answer before it is
    recorded."""
    fmt = output_format(output, as_json)
    given = {"ssh": ssh, "image_dir": image_dir, "cache_limit": cache_limit,
             "key_file": key_file, "known_hosts": known_hosts}
    if ssh is None and any(given.values()):
        from cloudctl.errors import InvalidInput

        raise InvalidInput("--image-dir, --cache-limit, --key-file and --known-hosts go with "
                           "--ssh")
    options = {key: value for key, value in given.items() if value is not None}
    with cloud(ctx) as c:
        c.hosts.add(name, cpus, memory, disk, driver, uri, options)
        view = c.hosts.show(name, probe=False)
    if fmt == "table" and not quiet:
        say(f"host {name} added ({view['driver']} {view['uri']})")
        return
    emit_one(_json(view), fmt, [(k, k) for k, _ in COLUMNS], quiet=quiet, key="name")


Probe = Annotated[bool, typer.Option(
    "--probe/--no-probe", help="Ask each host's hypervisor for its free memory and running "
                               "VMs (in parallel); --no-probe reads the store only.")]


@app.command("list")
def list_(ctx: typer.Context, probe: Probe = True, output: Output = None,
          as_json: Json = False, quiet: Quiet = False) -> None:
    """Every host: what the schedule has on it (from the store) and, unless --no-probe, what
    its hypervisor reports now (`hypervisor` in JSON: free_memory_mib, running_vms, or the
    error). A host in error is one that stopped answering a tick; it is back once it
    answers again."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        views = c.hosts.all(probe=probe and not quiet)
    rows = [_json(v) for v in views]
    # JSON keeps the hypervisor's answer as one object; CSV and tables get flat columns.
    table_rows = [{**row, **_hv_columns(row.get("hypervisor"))} for row in rows]
    columns = COLUMNS + ([("hv_free", "HV FREE MiB"), ("hv_vms", "HV VMS")] if probe else [])
    emit(rows if fmt == "json" else table_rows, columns, fmt, quiet, key="name")


def _hv_columns(found: dict[str, Any] | None) -> dict[str, Any]:
    if not found:
        return {"hv_free": "", "hv_vms": ""}
    if "error" in found:
        return {"hv_free": "unreachable", "hv_vms": ""}
    return {"hv_free": found["free_memory_mib"], "hv_vms": found["running_vms"]}


@app.command("show")
def show(ctx: typer.Context, name: Name, output: Output = None, as_json: Json = False) -> None:
    """One host: capacity, use, what its hypervisor reports, and its story."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        view = c.hosts.show(name)

    def story() -> None:
        from cloudctl.timefmt import local

        for e in view["events"]:
            sys.stdout.write(f"  {local(e['time'])}  {e['to'] or ''}  {e['reason']}\n")

    fields = [(k, label) for k, label in COLUMNS] + [("uri", "URI"), ("vms", "VMS ON IT"),
                                                      ("hypervisor", "HYPERVISOR")]
    data = _json(view)
    if fmt == "table":
        data = local_times(data, ["added"], view)
        data["hypervisor"] = ", ".join(f"{k}={v}" for k, v in view["hypervisor"].items())
    emit_one(data, fmt, fields, key="name", extra=story)


def _set(ctx: typer.Context, name: str, enabled: bool, fmt: str) -> None:
    with cloud(ctx) as c:
        c.hosts.set_enabled(name, enabled)
        view = c.hosts.show(name, probe=False)
    if fmt == "table":
        say(f"host {name} {'enabled' if enabled else 'disabled'}")
        return
    emit_one(_json(view), fmt, [(k, k) for k, _ in COLUMNS], key="name")


@app.command("enable")
def enable(ctx: typer.Context, name: Name, output: Output = None,
           as_json: Json = False) -> None:
    """Let the scheduler place new leases on the host again."""
    _set(ctx, name, True, output_format(output, as_json))


@app.command("disable")
def disable(ctx: typer.Context, name: Name, output: Output = None,
            as_json: Json = False) -> None:
    """Give the host nothing new; what it already holds carries on."""
    _set(ctx, name, False, output_format(output, as_json))


@app.command("remove")
def remove(
    ctx: typer.Context, name: Name,
    force: Annotated[bool, typer.Option(
        "--force", help="Drain first: stop its VMs, re-queue its best-effort leases, re-place "
                        "(or fail) its reservations.")] = False,
    output: Output = None, as_json: Json = False,
) -> None:
    """Forget a host. Refused (exit 4) while leases use it, unless --force."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        result = c.hosts.remove(name, force)
    if fmt == "table":
        say(f"host {name} removed")
        for lease in result["drained"]:
            say(f"  lease {lease['id']}: {lease['state']} ({lease['reason']})")
        return
    emit_one(result, fmt, [(k, k) for k in result], key="name")
