"""`cloudctl image`: the VM images leases boot from."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, Quiet, cloud, emit, emit_one, output_format, say

app = typer.Typer(help="Add, list, show and remove images.", no_args_is_help=True)
COLUMNS = [("name", "NAME"), ("format", "FORMAT"), ("size_bytes", "BYTES"),
           ("path", "PATH"), ("sha256", "SHA256")]
Name = Annotated[str, typer.Argument(help="The image's name.", show_default=False)]


def _json(image: Any) -> dict[str, Any]:
    from cloudctl.timefmt import iso

    data = asdict(image)
    data.pop("id")
    data["size_mib"] = image.size_mib
    data["added"] = iso(data.pop("added_at"))
    return data


@app.command("add")
def add(
    ctx: typer.Context, name: Name,
    path: Annotated[Path, typer.Option("--path", metavar="FILE", show_default=False,
                                       help="The image file; its size is read from it.")],
    fmt_: Annotated[str | None, typer.Option(
        "--format", metavar="qcow2|raw", show_default=False,
        help="Image format (default: detected from the file).")] = None,
    link: Annotated[bool, typer.Option(
        "--link", help="Link to the file instead of copying it into the repository "
                       "(the file must then stay where it is, unchanged).")] = False,
    kernel: Annotated[Path | None, typer.Option(
        "--kernel", metavar="FILE", show_default=False,
        help="Boot this kernel directly (copied with the image).")] = None,
    initrd: Annotated[Path | None, typer.Option(
        "--initrd", metavar="FILE", show_default=False,
        help="Initial ramdisk for --kernel.")] = None,
    cmdline: Annotated[str | None, typer.Option(
        "--cmdline", metavar="TEXT", show_default=False,
        help="Kernel command line for --kernel, e.g. 'console=ttyS0'.")] = None,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Add an image to the repository (copied, or linked with --link; size and SHA-256
    are recorded). Each VM gets its own disk from it: a qcow2 overlay or a raw copy."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        image = c.images.add(name, path, fmt_, link=link, kernel=kernel, initrd=initrd,
                            cmdline=cmdline)
    if fmt == "table" and not quiet:
        say(f"image {name} added ({image.format}, {image.size_bytes} bytes)")
        return
    emit_one(_json(image), fmt, COLUMNS, quiet=quiet, key="name")


@app.command("list")
def list_(ctx: typer.Context, output: Output = None, as_json: Json = False,
          quiet: Quiet = False) -> None:
    """Every image."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        images = c.images.all()
    emit([_json(i) for i in images], COLUMNS, fmt, quiet, key="name")


@app.command("show")
def show(ctx: typer.Context, name: Name, output: Output = None, as_json: Json = False) -> None:
    """One image."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        image = c.images.show(name)
    emit_one(_json(image), fmt, COLUMNS + [("added", "ADDED")], key="name")


@app.command("remove")
def remove(ctx: typer.Context, name: Name, output: Output = None,
           as_json: Json = False) -> None:
    """Forget an image and delete its repository copy (refused while a live lease uses it;
    the original file, and a linked one, are left alone)."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        image = c.images.remove(name)
    if fmt == "table":
        say(f"image {name} removed")
        return
    emit_one(_json(image), fmt, COLUMNS, key="name")


STATS_COLUMNS = [("image", "IMAGE"), ("host", "HOST"), ("transfers", "TRANSFERS"),
                 ("reused", "REUSED"), ("bytes", "BYTES"), ("planned_s", "PLANNED_S"),
                 ("actual_s", "ACTUAL_S")]


@app.command("stats")
def stats(ctx: typer.Context,
          name: Annotated[str | None, typer.Argument(help="Only this image.",
                                                     show_default=False)] = None,
          output: Output = None, as_json: Json = False) -> None:
    """Image transfers per image and host: how long they were planned to take (size over
    the configured bandwidth) against how long they took, and how often a host's cache
    made a transfer unnecessary."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        rows = c.images.stats(name)
    emit(rows, STATS_COLUMNS, fmt, False, key="image")
