"""`cloudctl cloud` (the public clouds leases burst to) and `cloudctl cost report`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, Quiet, cloud, emit, emit_one, output_format, say

app = typer.Typer(help="Add, list, show and remove the public clouds leases burst to.",
                  no_args_is_help=True)
cost_app = typer.Typer(help="What bursting has cost, and will cost this month.",
                       no_args_is_help=True)

COLUMNS = [("name", "NAME"), ("type", "TYPE"), ("region", "REGION"),
           ("budget_per_month", "BUDGET/MONTH $"), ("spent_month_usd", "SPENT $"),
           ("budget_left_usd", "LEFT $"), ("instances_running", "RUNNING"),
           ("instance_types", "TYPES"), ("max_wait", "BE MAX WAIT s"),
           ("max_preemptions", "AR MAX PREEMPT")]
Name = Annotated[str, typer.Argument(help="The cloud's name.", show_default=False)]


def _prices(values: list[str] | None) -> dict[str, float]:
    from cloudctl.errors import InvalidInput

    out = {}
    for item in values or []:
        kind, sep, price = item.partition("=")
        try:
            out[kind.strip()] = float(price)
        except ValueError:
            sep = ""
        if not sep or not kind.strip():
            raise InvalidInput(f"--price {item!r}: write TYPE=USD_PER_HOUR, e.g. "
                               f"t3.micro=0.0104")
    return out


def _images(values: list[str] | None) -> dict[str, str] | None:
    from cloudctl.errors import InvalidInput

    if not values:
        return None
    out = {}
    for item in values:
        image, sep, ami = item.partition("=")
        if not sep or not image or not ami:
            raise InvalidInput(f"--image-ami {item!r}: write IMAGE=AMI, e.g. "
                               f"debian=ami-0123456789abcdef0")
        out[image] = ami
    return out


@app.command("add")
def add(
    ctx: typer.Context,
    name: Name,
    type_: Annotated[str, typer.Option("--type", help="Provider API: ec2 (AWS or any "
                                                      "EC2-compatible endpoint).")] = "ec2",
    region: Annotated[str, typer.Option("--region", metavar="R", show_default=False,
                                        help="Region, e.g. us-east-1.")] = "",
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", metavar="URL", show_default=False,
        help="An EC2-compatible endpoint instead of AWS's.")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="P", show_default=False,
        help="AWS profile to take credentials from. Credentials always come from the "
             "standard AWS chain (environment, ~/.aws files); cloudctl never stores or "
             "prints them.")] = None,
    budget: Annotated[float | None, typer.Option(
        "--budget-per-month", metavar="USD", show_default=False,
        help="Most this cloud may cost per calendar month (UTC); a burst that would pass "
             "it is refused with the reason. Default: no limit.")] = None,
    ami: Annotated[str | None, typer.Option(
        "--ami", metavar="AMI", show_default=False,
        help="Machine image burst VMs boot (unless --image-ami maps their image).")] = None,
    image_ami: Annotated[list[str] | None, typer.Option(
        "--image-ami", metavar="IMAGE=AMI", show_default=False,
        help="The AMI for leases of a local image (repeatable).")] = None,
    price: Annotated[list[str] | None, typer.Option(
        "--price", metavar="TYPE=USD", show_default=False,
        help="Hourly price of an instance type the cloud may launch (repeatable): these "
             "types only. Default: the config's [clouds.NAME] prices, else a built-in "
             "us-east-1 on-demand list.")] = None,
    max_wait: Annotated[str | None, typer.Option(
        "--max-wait", metavar="DURATION", show_default=False,
        help="Burst a best-effort lease that would wait longer than this for local hosts. "
             "Default: best-effort leases never burst.")] = None,
    max_preemptions: Annotated[int | None, typer.Option(
        "--max-preemptions", metavar="N", show_default=False,
        help="Burst an advance reservation that would preempt more than N leases (or "
             "finds no room). Default: ARs never burst.")] = None,
    no_immediate: Annotated[bool, typer.Option(
        "--no-immediate", help="Do not burst immediate leases that find no local room "
                               "(by default they do).")] = False,
    max_instances: Annotated[int | None, typer.Option(
        "--max-instances", metavar="N", show_default=False,
        help="Most instances running at once on this cloud.")] = None,
    boot_time: Annotated[str | None, typer.Option(
        "--boot-time", metavar="DURATION", show_default=False,
        help="How long an instance takes to boot, planned before its lease runs "
             "(default 0).")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Let a multi-node lease burst in part: the nodes local hosts have "
                          "room for run here, only the rest on this cloud (cheaper than "
                          "bursting it whole). By default a lease bursts whole.")] = False,
    burst_policy: Annotated[str | None, typer.Option(
        "--burst-policy", metavar="NAME", show_default=False,
        help="When and where leases burst: cheapest-fit (the default), never, or a "
             "registered plug-in (entry point group cloudctl.policies.burst).")] = None,
    retry_backoff: Annotated[float | None, typer.Option(
        "--retry-backoff", metavar="SECONDS", show_default=False,
        help="First wait before retrying a throttled or capacity-refused call; doubles each "
             "time, 4 tries in all (default 1).")] = None,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Register a public cloud to burst to. The provider must answer with the credentials
    of the standard AWS chain; instance sizes are read from it (describe_instance_types)."""
    fmt = output_format(output, as_json)
    options: dict[str, Any] = {
        "ami": ami, "images": _images(image_ami), "max_wait": max_wait,
        "max_preemptions": max_preemptions, "burst_im": False if no_immediate else None,
        "max_instances": max_instances, "boot_time": boot_time, "partial": partial or None,
        "retry_backoff": retry_backoff, "policy": burst_policy}
    with cloud(ctx) as c:
        view = c.clouds.add(name, type_, region, endpoint, profile, budget, _prices(price),
                           options)
    if fmt == "table" and not quiet:
        say(f"cloud {name} added ({type_} {region}, {view['instance_types']} instance types)")
        return
    emit_one(view, fmt, [(k, k) for k, _ in COLUMNS], quiet=quiet, key="name")


@app.command("list")
def list_(ctx: typer.Context, output: Output = None, as_json: Json = False,
          quiet: Quiet = False) -> None:
    """Every cloud: budget, spend this month, running instances, burst triggers."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        views = c.clouds.all()
    emit(views, COLUMNS, fmt, quiet, key="name")


@app.command("show")
def show(ctx: typer.Context, name: Name, output: Output = None, as_json: Json = False) -> None:
    """One cloud: its settings, instance types with prices, and its instances."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        view = c.clouds.show(name)
    if fmt == "table":
        view = {**view, "catalogue": ", ".join(
            f"{t['name']} ({t['vcpus']} vCPU, {t['memory_mib']} MiB, ${t['price_per_hour']}/h)"
            for t in view["catalogue"]), "instances": ", ".join(
            f"{i['instance_id'] or '-'} {i['vm']} {i['state']}" for i in view["instances"])}
    fields = COLUMNS + [("endpoint", "ENDPOINT"), ("profile", "PROFILE"), ("ami", "AMI"),
                        ("catalogue", "INSTANCE TYPES"), ("instances", "INSTANCES")]
    emit_one(view, fmt, fields, key="name")


@app.command("remove")
def remove(ctx: typer.Context, name: Name, output: Output = None,
           as_json: Json = False) -> None:
    """Forget a cloud. Refused (exit 4) while instances run there."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        result = c.clouds.remove(name)
    if fmt == "table":
        say(f"cloud {name} removed")
        return
    emit_one(result, fmt, [(k, k) for k in result], key="name")


@cost_app.command("report")
def report(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="T", show_default=False,
        help="Only spend from this time on: ISO 8601 or -DURATION (e.g. -7d). "
             "Default: everything.")] = None,
    by: Annotated[str, typer.Option("--by", metavar="lease|provider|day",
                                    help="How rows are grouped.")] = "provider",
    output: Output = None, as_json: Json = False,
) -> None:
    """Spend so far per lease, provider or day, and per provider the month's spend so far,
    projected (running instances billed to their lease's end) and the budget left."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        start = _since(since, c.clock()) if since is not None else None
        result = c.clouds.cost_report(start, by)
    if fmt == "json":
        import json

        typer.echo(json.dumps(result))
        return
    emit(result["rows"], [(by, by.upper()), ("spent_usd", "SPENT $"),
                          ("instances", "INSTANCES"), ("instance_hours", "HOURS")], fmt, False,
         key=by)
    if fmt == "table":
        for p in result["providers"]:
            left = p["budget_left_usd"]
            say(f"{p['provider']} {p['month']}: spent ${p['spent_month_usd']:.2f}, projected "
                f"${p['projected_month_usd']:.2f}"
                + (f", budget left ${left:.2f}" if left is not None else ""))


def _since(text: str, now: int) -> int:
    from cloudctl.timefmt import parse_duration, parse_time

    value = text.strip()
    if value.startswith("-"):
        return now - parse_duration(value[1:], option="--since")
    return parse_time(value, now, option="--since")
