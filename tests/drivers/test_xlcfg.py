"""xl.cfg files: byte-for-byte round trips on golden files, one-line errors with line numbers,
and conversions to lease templates and from VM specs (goldens in tests/drivers/golden/xl/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudctl.drivers.base import VMSpec
from cloudctl.drivers.xlcfg import XlConfig, load, parse, write
from cloudctl.drivers.xlconvert import (
    parse_disk,
    template_from_config,
    template_from_xl,
    xl_from_spec,
)
from test_domain_schema import BARE, FULL

from cloudctl.errors import InvalidInput

GOLDEN = Path(__file__).parent / "golden" / "xl"
GOLDENS = sorted(GOLDEN.glob("*.cfg"))


def golden_text(name: str) -> str:
    return (GOLDEN / name).read_bytes().decode()


@pytest.mark.parametrize("path", GOLDENS, ids=[p.name for p in GOLDENS])
def test_parse_then_write_is_byte_for_byte(path: Path) -> None:
    assert len(GOLDENS) >= 8
    assert write(load(str(path))).encode() == path.read_bytes()


def test_values_are_parsed_with_their_types_and_lines() -> None:
    config = load(str(GOLDEN / "pv-debian.cfg"))
    assert config.get("memory") == 2048
    assert config.get("extra") == "console=hvc0 elevator=noop"
    assert config.get("disk") == [
        "format=raw, vdev=xvda, access=rw, target=/dev/vg0/debian-web-01-root",
        "format=raw, vdev=xvdb, access=rw, target=/dev/vg0/debian-web-01-data"]
    disk = config.setting("disk")
    assert disk is not None and disk.line == 21
    legacy = load(str(GOLDEN / "hvm-legacy.cfg"))
    assert legacy.get("memory") == 512  # written 0x200
    assert legacy.get("serial") == "file:/var/log/xen/centos7-build.serial"
    assert "sdl" in legacy and "vnc" not in legacy


def test_escapes_and_several_statements_on_a_line() -> None:
    text = 'a = 1; b = "say \\"hi\\"\\n"  # why\nc = [ 1, \'x\' ]'
    config = parse(text)
    assert [(s.key, s.value) for s in config.settings()] == [
        ("a", 1), ("b", 'say "hi"\n'), ("c", [1, "x"])]
    assert write(config) == text
    config["b"] = "tab\there"
    assert write(config) == 'a = 1; b = "tab\\there"  # why\nc = [ 1, \'x\' ]'


def test_a_later_setting_overrides_an_earlier_one() -> None:
    config = parse("memory = 512\nmemory = 1024\n")
    assert config.get("memory") == 1024
    config["memory"] = 2048
    assert write(config) == "memory = 512\nmemory = 2048\n"


def test_changing_a_value_keeps_the_rest_of_the_file() -> None:
    original = golden_text("pv-debian.cfg")
    config = parse(original)
    config["memory"] = 3072
    config["on_crash"] = "destroy"
    config["disk"] = ["format=raw, vdev=xvda, access=rw, target=/dev/vg0/root"]
    config["vif"] = []
    config["cpu_weight"] = 512
    expected = (original
                .replace("memory  = 2048", "memory  = 3072")
                .replace('on_crash    = "restart"   #', 'on_crash    = "destroy"   #'))
    start, end = expected.index("disk = ["), expected.index("on_poweroff")
    expected = (expected[:start]
                + "disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/vg0/root' ]\n\n"
                + "vif  = [ ]\n\n" + expected[end:] + "cpu_weight = 512\n")
    assert write(config) == expected
    assert parse(write(config)).get("disk") == config.get("disk")


def test_appending_to_a_file_without_a_final_newline() -> None:
    config = parse("name = 'x'")
    config["vcpus"] = 2
    assert write(config) == "name = 'x'\nvcpus = 2\n"
    empty = XlConfig()
    empty["memory"] = 64
    assert write(empty) == "memory = 64\n"


@pytest.mark.parametrize("text, message", [
    ("memory = \n", "line 1: memory has no value"),
    ("\n\nbuilder = hvm\n", "line 3: expected a quoted string, a number or a list, found 'hvm'"),
    ("= 1\n", "line 1: expected a setting name, found '='"),
    ("vcpus 2\n", "line 1: expected '=' after vcpus"),
    ("disk = [ 'a' 'b' ]\n", "line 1: expected ',' or ']' in the list, found \"'b'\""),
    ("disk = [ 'a', , ]\n", "line 1: expected an item or ']' in the list, found ','"),
    ("# c\nname = \"web\n", "line 2: unterminated string"),
    ("memory = 1 2\n", "line 1: memory: expected the end of the line, found '2'"),
    ("name = 'a'\ndisk = [ 'x',\n  'y'\n", "line 4: the list opened on line 2 has no ']'"),
    ("name = 'a'\n@include 'b'\n", "line 2: unexpected character '@'"),
    ("memory = 1.5\n", "line 1: unexpected character '1'"),
    ("disk = [ [ 'x' ] ]\n", "line 1: expected an item or ']' in the list, found '['"),
])
def test_bad_files_are_one_line_errors_with_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(text, "guest.cfg")
    assert str(err.value) == f"guest.cfg: {message}"
    assert err.value.exit_code == 2


def test_unreadable_files_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read .*none.cfg: No such file"):
        load(str(tmp_path / "none.cfg"))
    binary = tmp_path / "bin.cfg"
    binary.write_bytes(b"name = '\xff'\n")
    with pytest.raises(InvalidInput, match="not a text file"):
        template_from_xl(str(binary))


# -- xl.cfg -> template ------------------------------------------------------------------------

def test_a_pv_file_with_a_kernel_becomes_a_template() -> None:
    assert template_from_xl(str(GOLDEN / "pv-debian.cfg")) == {
        "name": "debian-web-01", "guest": "pv", "cpus": 2, "memory_mib": 2048,
        "kernel": "/var/lib/xen/boot/vmlinuz-6.1.0-18-cloud-amd64",
        "initrd": "/var/lib/xen/boot/initrd.img-6.1.0-18-cloud-amd64",
        "cmdline": "root=/dev/xvda1 ro console=hvc0 elevator=noop", "bootloader": None,
        "disks": [
            {"path": "/dev/vg0/debian-web-01-root", "format": "raw", "vdev": "xvda",
             "access": "rw"},
            {"path": "/dev/vg0/debian-web-01-data", "format": "raw", "vdev": "xvdb",
             "access": "rw"}],
        "vifs": [{"mac": "00:16:3e:1a:2b:3c", "bridge": "xenbr0"},
                 {"mac": "00:16:3e:1a:2b:3d", "bridge": "xenbr1", "rate": "100Mb/s"}]}


def test_a_legacy_pv_file_uses_its_bootloader_and_positional_disks() -> None:
    template = template_from_xl(str(GOLDEN / "pv-pygrub-legacy.cfg"))
    assert (template["guest"], template["cpus"], template["memory_mib"]) == ("pv", 1, 1024)
    assert template["bootloader"] == "/usr/lib/xen-4.17/bin/pygrub"
    assert template["kernel"] is None and template["cmdline"] is None
    assert [d["path"] for d in template["disks"]] == [
        "/dev/vg0/mail-disk", "/dev/vg0/mail-swap", "/srv/xen/mail-spool.img"]
    assert {d["access"] for d in template["disks"]} == {"rw"}
    assert template["vifs"] == [{"ip": "10.0.0.25", "mac": "00:16:3e:00:00:25",
                                 "bridge": "xenbr0"}]


def test_hvm_files_by_type_and_by_builder() -> None:
    windows = template_from_xl(str(GOLDEN / "hvm-windows.cfg"))
    assert (windows["guest"], windows["cpus"], windows["memory_mib"]) == ("hvm", 4, 8192)
    assert windows["disks"] == [
        {"path": "/srv/xen/images/win2022-ad.qcow2", "format": "qcow2", "vdev": "hda",
         "access": "rw"},
        {"path": "/srv/iso/SERVER_EVAL_x64FRE.iso", "format": "raw", "vdev": "hdc",
         "access": "ro", "devtype": "cdrom"}]
    legacy = template_from_xl(str(GOLDEN / "hvm-legacy.cfg"))
    assert legacy["guest"] == "hvm"
    assert legacy["kernel"] is None, "xm's kernel = hvmloader is firmware, not a kernel"
    assert legacy["disks"][1] == {"path": "", "format": "raw", "vdev": "hdc", "access": "ro",
                                  "devtype": "cdrom"}


@pytest.mark.parametrize("spec, expected", [
    ("phy:/dev/vg/web,xvda,w", ("/dev/vg/web", "raw", "xvda", "rw")),
    ("tap:qcow2:/srv/a.qcow2,xvdb,r", ("/srv/a.qcow2", "qcow2", "xvdb", "ro")),
    ("/srv/b.img,raw,xvdc,rw", ("/srv/b.img", "raw", "xvdc", "rw")),
    ("vdev=xvdd, target=/srv/with,comma.img", ("/srv/with,comma.img", "raw", "xvdd", "rw")),
    ("/srv/c.qcow2,qcow2,hda", ("/srv/c.qcow2", "qcow2", "hda", "rw")),
])
def test_disk_specs(spec: str, expected: tuple[str, str, str, str]) -> None:
    disk = parse_disk(spec)
    assert (disk["path"], disk["format"], disk["vdev"], disk["access"]) == expected


@pytest.mark.parametrize("text, message", [
    ("name = 'x'\n", "memory is not set"),
    ("memory = 512\nvcpus = '2'\n", "line 2: vcpus must be a positive number, not \"2\""),
    ("memory = 0\n", "line 1: memory must be a positive number, not 0"),
    ("memory = 512\ntype = 'pvh'\n", "line 2: type 'pvh' is not supported (use pv, hvm)"),
    ("memory = 512\nbuilder = 'linux'\n", "line 2: builder 'linux' is not one of generic, hvm"),
    ("memory = 512\n\ndisk = [ 'phy:/dev/vg/x' ]\n",
     "line 3: disk 'phy:/dev/vg/x' names no virtual device (vdev)"),
    ("memory = 512\ndisk = [ '/x,xvda,rwx' ]\n",
     "line 2: disk '/x,xvda,rwx': access 'rwx' is not one of w, rw, r, ro"),
    ("memory = 512\ndisk = [ 1 ]\n", "line 2: disk must be a list of quoted strings, not [ 1 ]"),
    ("memory = 512\nvif = [ 'bridge' ]\n", "line 2: vif 'bridge': 'bridge' is not key=value"),
    ("memory = 512\nextra = 'quiet'\n", "ramdisk and cmdline/extra need a kernel"),
])
def test_bad_templates_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        template_from_config(parse(text, "t.cfg"), "t.cfg")
    assert str(err.value) == f"t.cfg: {message}"


def test_a_lone_string_is_a_one_item_list() -> None:
    template = template_from_config(parse("memory = 64\ndisk = '/a,xvda,w'\n"))
    assert [d["vdev"] for d in template["disks"]] == ["xvda"]


# -- VM spec -> xl.cfg -------------------------------------------------------------------------

@pytest.mark.parametrize("golden, spec, guest", [
    ("export-pv-kernel.cfg", FULL, "pv"), ("export-pv-pygrub.cfg", BARE, "pv"),
    ("export-hvm.cfg", FULL, "hvm"), ("export-hvm-bare.cfg", BARE, "hvm"),
])
def test_export_goldens(golden: str, spec: VMSpec, guest: str) -> None:
    assert xl_from_spec(spec, guest) == golden_text(golden)


@pytest.mark.parametrize("guest", ["pv", "hvm"])
def test_an_exported_file_reads_back_as_the_same_vm(guest: str) -> None:
    template = template_from_config(parse(xl_from_spec(FULL, guest, bridge="br7")))
    assert (template["name"], template["guest"], template["cpus"], template["memory_mib"]) == (
        FULL.name, guest, FULL.cpus, FULL.memory_mib)
    assert (template["kernel"], template["initrd"], template["cmdline"]) == (
        FULL.kernel, FULL.initrd, FULL.cmdline)
    assert template["disks"] == [{"path": FULL.disk_path, "format": "qcow2",
                                  "vdev": "hda" if guest == "hvm" else "xvda", "access": "rw"}]
    assert template["vifs"] == [{"bridge": "br7"}]


def test_export_refuses_an_unknown_guest_type() -> None:
    with pytest.raises(InvalidInput, match="guest 'pvh'"):
        xl_from_spec(BARE, "pvh")
