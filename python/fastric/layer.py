"""`python -m fastric layer build`: a Lambda layer that runs functions on fastric.

Lambda unpacks a function's layers under `/opt`. The zip written here holds:

- `python/`: fastric (the contents of its abi3 wheel, compiled for the layer's architecture) and
  its dependencies, where the managed Python runtimes look for layer packages;
- `fastric-wrapper`: the exec wrapper for the managed runtimes, python3.10 and later. With
  `AWS_LAMBDA_EXEC_WRAPPER=/opt/fastric-wrapper`, Lambda runs it with the stock runtime's command
  line; it starts fastric on the same interpreter instead;
- `bootstrap`: the entry point of a custom runtime (`provided.al2023`, `provided.al2`) whose
  image brings its own Python interpreter;
- `fastric-layer.json`: what the layer is: version, architecture, runtimes, entry points.

The same inputs give the same bytes: entries are sorted, with fixed dates and permissions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["ARCHITECTURES", "PYTHON_VERSIONS", "LayerError", "build_layer", "build_wheel", "main"]


@dataclass(frozen=True)
class Architecture:
    """A Lambda architecture and how each tool names it.

    Attributes:
        lambda_name: Lambda's name, as in `--compatible-architectures`.
        machine: the wheel platform tag suffix and `uname -m` name.
        rust_target: the Rust target triple of the extension.
        elf_machine: the ELF header's `e_machine` of a binary for it.
    """

    lambda_name: str
    machine: str
    rust_target: str
    elf_machine: int


ARCHITECTURES = {
    "x86_64": Architecture("x86_64", "x86_64", "x86_64-unknown-linux-gnu", 62),
    "arm64": Architecture("arm64", "aarch64", "aarch64-unknown-linux-gnu", 183),
}

# The managed runtimes the layer serves; dependencies are fetched compiled for each of them.
# Not python3.9: Lambda has deprecated it, and orjson, a dependency, no longer ships for it.
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2")

# Lambda's quotas: a zip uploaded directly, and a function with all its layers once unpacked.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

WRAPPER_NAME = "fastric-wrapper"
BOOTSTRAP_NAME = "bootstrap"
MANIFEST_NAME = "fastric-layer.json"

# 1980-01-01, the earliest date a zip can hold: entries carry no build time.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644
_EXECUTABLE_MODE = 0o100755
_DIRECTORY_MODE = 0o040755
_ZIP_UNIX = 3

# Wheel metadata that describes one installation, not the package; a layer is not one.
_SKIPPED_METADATA = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
_EXTRA_MARKER = re.compile(r"\bextra\s*==")

# Runs fastric on the interpreter the script is given. The stock bootstrap script, which fastric
# replaces, is what would have put the function's folder and the layers' folders on the import
# path, so this does it instead, in the same order and with the same `.pth` processing.
_LAUNCHER = """
import os, site, sys

layer_root, stock_command = sys.argv[1], sys.argv[2:]
python_dir = os.path.join(layer_root, "python")
folders = [
    os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd(),
    os.path.join(python_dir, "lib", "python%d.%d" % sys.version_info[:2], "site-packages"),
    python_dir,
]
# -c puts the working directory first, where the stock script would have its own folder.
if sys.path and sys.path[0] == "":
    del sys.path[0]
sys.path[:0] = folders
for folder in folders:
    site.addsitedir(folder)
del sys.argv[1:]
try:
    import fastric.bootstrap
except ImportError as error:
    if not stock_command:
        raise
    sys.stderr.write("fastric: cannot load (%s); starting the stock runtime\\n" % error)
    sys.stderr.flush()
    os.execv(stock_command[0], stock_command)
from fastric.__main__ import main
sys.exit(main([]))
"""

_SCRIPT = """#!/bin/sh
{comment}
case $0 in */*) layer_root=${{0%/*}} ;; *) layer_root=. ;; esac
exec {interpreter} -c '{launcher}' "$layer_root"{stock_command}
"""

_WRAPPER_COMMENT = """\
# fastric's exec wrapper for the AWS Lambda managed Python runtimes, python3.10 and later.
#
# With this layer attached and AWS_LAMBDA_EXEC_WRAPPER=/opt/fastric-wrapper, Lambda runs this
# script with the stock runtime's command line, `<interpreter> /var/runtime/bootstrap.py`. It runs
# fastric on that interpreter instead, with the environment and open descriptors unchanged. If
# fastric cannot be loaded (a layer built for the other architecture, say), it says so on stderr
# and runs the stock command line after all."""

_BOOTSTRAP_COMMENT = """\
# fastric as a custom runtime (provided.al2023, provided.al2) for a function whose image or
# layers bring Python 3.10 or later: Lambda runs /opt/bootstrap with no arguments. The interpreter
# is $FASTRIC_PYTHON, else the first python3 on PATH."""


class LayerError(Exception):
    """The layer cannot be built as asked; the message says why and what to do."""


def main(argv: Optional[list[str]] = None) -> int:
    """The `layer` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastric layer", description="Build fastric's Lambda layer.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="write a layer zip", description="Write a fastric Lambda layer zip.")
    build.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES), help="Lambda architecture")
    build.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="folder to write the zip to")
    build.add_argument(
        "--wheel",
        type=Path,
        metavar="PATH",
        help="a fastric abi3 wheel for the architecture (default: build one from --source with maturin)",
    )
    build.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="fastric source tree to build the wheel from (default: the one this package runs from, if any)",
    )
    build.add_argument(
        "--find-links",
        type=Path,
        metavar="DIR",
        help="take dependency wheels from this folder only, instead of the package index",
    )
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)

    try:
        zip_path = build_layer(
            arguments.arch,
            arguments.out,
            wheel=arguments.wheel,
            source=arguments.source,
            find_links=arguments.find_links,
        )
    except LayerError as error:
        sys.stderr.write(f"fastric layer: {error}\n")
        return 1
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    sys.stdout.write(f"{zip_path}\n  {zip_path.stat().st_size} bytes, sha256 {digest}\n")
    return 0


def build_layer(
    arch: str,
    out_dir: Path,
    *,
    wheel: Optional[Path] = None,
    source: Optional[Path] = None,
    find_links: Optional[Path] = None,
) -> Path:
    """Writes the layer zip for `arch` into `out_dir` and returns its path.

    Args:
        arch: `x86_64` or `arm64`.
        out_dir: folder for the zip, created if missing.
        wheel: a fastric abi3 wheel for `arch`; built from `source` when None.
        source: fastric source tree; defaults to the one this module runs from.
        find_links: folder of dependency wheels to use instead of the package index.

    Raises:
        LayerError: a wrong wheel, a failed build or download, or a layer over Lambda's size quotas.
    """
    architecture = ARCHITECTURES[arch]
    with tempfile.TemporaryDirectory(prefix="fastric-layer-") as scratch:
        if wheel is None:
            wheel = build_wheel(_source_tree(source), arch, Path(scratch) / "wheel")
        package = _read_wheel(wheel)
        _check_package(package, wheel, architecture)
        dependencies = _fetch_dependencies(package.requirements, architecture, find_links, Path(scratch) / "deps")
        files = {f"python/{name}": data for name, data in package.files.items()}
        files.update((f"python/{name}", data) for name, data in _merge_wheels(dependencies).items())

    manifest = _manifest(package.version, architecture)
    files[MANIFEST_NAME] = (json.dumps(manifest, indent=2) + "\n").encode()
    executables = {
        WRAPPER_NAME: _script(_WRAPPER_COMMENT, '"${1:-python3}"', ' "$@"'),
        BOOTSTRAP_NAME: _script(_BOOTSTRAP_COMMENT, '"${FASTRIC_PYTHON:-python3}"', ""),
    }

    unzipped = sum(len(data) for data in files.values()) + sum(len(text) for text in executables.values())
    if unzipped > MAX_UNZIPPED_BYTES:
        raise LayerError(f"the layer unzips to {unzipped} bytes, over Lambda's {MAX_UNZIPPED_BYTES}")
    comment = f"fastric {package.version} Lambda layer for {arch}: python{PYTHON_VERSIONS[0]} to "
    comment += f"python{PYTHON_VERSIONS[-1]} through {WRAPPER_NAME}, custom runtimes through {BOOTSTRAP_NAME}"
    data = _zip_bytes(files, {name: text.encode() for name, text in executables.items()}, comment)
    if len(data) > MAX_ZIPPED_BYTES:
        raise LayerError(f"the layer zip is {len(data)} bytes, over Lambda's {MAX_ZIPPED_BYTES} for a direct upload")

    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"fastric-{package.version}-layer-{arch}.zip"
    zip_path.write_bytes(data)
    return zip_path


def build_wheel(source: Path, arch: str, out_dir: Path) -> Path:
    """Builds the fastric abi3 wheel for `arch` (manylinux2014) with maturin; returns its path.

    Zig (the `ziglang` package, or `zig` on PATH) links against glibc 2.17 whatever the host has,
    and cross-compiles for the other architecture; the Rust standard library for the target must
    be installed (`rustup target add aarch64-unknown-linux-gnu`).

    Raises:
        LayerError: maturin is missing or the build failed.
    """
    architecture = ARCHITECTURES[arch]
    maturin = _maturin_command()
    zig = _has_zig()
    host = os.uname().machine
    if architecture.machine != host and not zig:
        raise LayerError(
            f"building for {arch} on {host} needs zig (pip install ziglang) and the Rust target "
            f"{architecture.rust_target}, or pass --wheel with a prebuilt {architecture.machine} wheel"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    command = [*maturin, "build", "--release", "--compatibility", "manylinux2014", "--out", str(out_dir)]
    command += ["--target", architecture.rust_target]
    if zig:
        command.append("--zig")
    env = dict(os.environ)
    if importlib.util.find_spec("ziglang") is not None:
        # maturin looks for `python3 -m ziglang` on PATH unless told which Python has it.
        env["CARGO_ZIGBUILD_PYTHON_PATH"] = sys.executable
    completed = subprocess.run(command, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        output = completed.stdout.decode(errors="replace")[-4000:]
        hint = "" if zig else "\n(without zig, the host's glibc may be too new for manylinux2014: pip install ziglang)"
        raise LayerError(f"maturin failed with status {completed.returncode}:\n{output}{hint}")
    wheels = sorted(out_dir.glob(f"fastric-*-abi3-*{architecture.machine}*.whl"))
    if len(wheels) != 1:
        raise LayerError(f"expected one {architecture.machine} wheel from maturin in {out_dir}, found {len(wheels)}")
    return wheels[0]


# ---- the fastric wheel ----


@dataclass
class _Wheel:
    version: str
    tags: list[str]
    requirements: list[str]
    files: dict[str, bytes]


def _source_tree(source: Optional[Path]) -> Path:
    candidates = [source] if source is not None else [Path(__file__).resolve().parents[2], Path.cwd()]
    for candidate in candidates:
        if (candidate / "Cargo.toml").is_file() and (candidate / "python" / "fastric").is_dir():
            return candidate
    where = source if source is not None else "next to this package or in the working directory"
    raise LayerError(f"no fastric source tree {where}; pass --source DIR or --wheel PATH")


def _maturin_command() -> list[str]:
    if importlib.util.find_spec("maturin") is not None:
        return [sys.executable, "-m", "maturin"]
    found = shutil.which("maturin")
    if found is None:
        raise LayerError("maturin is not installed (pip install maturin), or pass --wheel PATH")
    return [found]


def _has_zig() -> bool:
    return importlib.util.find_spec("ziglang") is not None or shutil.which("zig") is not None


def _read_wheel(path: Path) -> _Wheel:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise LayerError(f"cannot read wheel {path}: {error}") from None
    with archive:
        files = {
            info.filename: archive.read(info)
            for info in archive.infolist()
            if not info.is_dir() and not _is_skipped_metadata(info.filename)
        }
    metadata_dirs = {name.split("/")[0] for name in files if name.split("/")[0].endswith(".dist-info")}
    if len(metadata_dirs) != 1:
        raise LayerError(f"{path} is not a wheel: no single .dist-info folder")
    metadata_dir = metadata_dirs.pop()
    metadata = _parse_metadata(files.get(f"{metadata_dir}/METADATA", b""))
    wheel_info = _parse_metadata(files.get(f"{metadata_dir}/WHEEL", b""))
    return _Wheel(
        version=metadata.get("Version", ["0"])[0],
        tags=wheel_info.get("Tag", []),
        # Optional dependencies (`; extra == "..."`) stay out of the layer.
        requirements=[req for req in metadata.get("Requires-Dist", []) if not _EXTRA_MARKER.search(req)],
        files=files,
    )


def _is_skipped_metadata(name: str) -> bool:
    folder, _, base = name.rpartition("/")
    return folder.endswith(".dist-info") and "/" not in folder and base in _SKIPPED_METADATA


def _parse_metadata(text: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in text.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            break  # the description body follows the headers
        name, separator, value = line.partition(":")
        if separator and not name.startswith((" ", "\t")):
            fields.setdefault(name.strip(), []).append(value.strip())
    return fields


def _check_package(package: _Wheel, path: Path, architecture: Architecture) -> None:
    # The layer serves every Python version from one tree, which only an abi3 wheel can do.
    platforms = {tag.split("-")[2] for tag in package.tags if tag.count("-") == 2}
    abis = {tag.split("-")[1] for tag in package.tags if tag.count("-") == 2}
    if "fastric/__init__.py" not in package.files:
        raise LayerError(f"{path.name} does not hold the fastric package")
    if abis != {"abi3"}:
        raise LayerError(f"{path.name} is not an abi3 wheel (tags: {', '.join(package.tags)})")
    wanted = f"_{architecture.machine}"
    if not platforms or not all(p.endswith(wanted) and not p.startswith("musllinux") for p in platforms):
        raise LayerError(
            f"{path.name} is not a glibc Linux wheel for {architecture.lambda_name} ({architecture.machine}); "
            f"its platform tags are {', '.join(sorted(platforms)) or 'missing'}"
        )
    extensions = [name for name in package.files if name.endswith(".so")]
    if not extensions:
        raise LayerError(f"{path.name} holds no compiled extension")
    for name in extensions:
        machine = _elf_machine(package.files[name])
        if machine != architecture.elf_machine:
            raise LayerError(f"{name} in {path.name} is compiled for ELF machine {machine}, not {architecture.machine}")


def _elf_machine(binary: bytes) -> Optional[int]:
    # e_machine sits at byte 18 of a 64-bit ELF header, in the byte order that byte 5 names.
    if binary[:4] != b"\x7fELF" or len(binary) < 20:
        return None
    return int.from_bytes(binary[18:20], "little" if binary[5] == 1 else "big")


# ---- dependencies ----


def _fetch_dependencies(
    requirements: list[str], architecture: Architecture, find_links: Optional[Path], dest: Path
) -> list[Path]:
    """Downloads each dependency's wheel for every Python version the layer serves."""
    if not requirements:
        return []
    pins = _pinned(requirements)

    def download(version: str) -> None:
        # Each version gets a folder of its own, so that no two pip processes write one file.
        abi = "cp" + version.replace(".", "")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        command += ["--only-binary=:all:", "--dest", str(dest / abi), "--implementation", "cp"]
        command += ["--python-version", version, "--abi", abi, "--abi", "abi3", "--abi", "none"]
        command += ["--platform", f"manylinux2014_{architecture.machine}"]
        if find_links is not None:
            command += ["--no-index", "--find-links", str(find_links)]
        completed = subprocess.run([*command, *pins], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if completed.returncode != 0:
            output = completed.stdout.decode(errors="replace")[-3000:]
            raise LayerError(f"cannot fetch {' '.join(pins)} for Python {version} on {architecture.machine}:\n{output}")

    # pip spends most of its time waiting on the index, so a few run at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(download, version) for version in PYTHON_VERSIONS]:
            future.result()
    unique = {wheel.name: wheel for wheel in dest.glob("*/*.whl")}
    return [unique[name] for name in sorted(unique)]


def _pinned(requirements: list[str]) -> list[str]:
    # The layer takes the versions fastric runs with here, so that building it again gives the
    # same bytes; the wheel's own requirement still applies, and pip rejects a version outside it.
    pins = []
    for requirement in requirements:
        spec = requirement.split(";")[0].strip()
        pins.append(spec)
        name = re.match(r"[A-Za-z0-9._-]+", spec)
        if name is None:
            continue
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{name.group(0)}=={importlib.metadata.version(name.group(0))}")
    return pins


def _merge_wheels(wheels: Iterable[Path]) -> dict[str, bytes]:
    """One tree from several wheels of the same packages, one per Python version.

    Their modules agree and their compiled parts have per-version names
    (`_speedups.cpython-312-x86_64-linux-gnu.so`), so they sit side by side; each project's
    metadata is taken from its first wheel, without the tags that tell a single version.
    """
    merged: dict[str, bytes] = {}
    owners: dict[str, str] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = _installed_name(info.filename)
                if info.is_dir() or name is None:
                    continue
                data = archive.read(info)
                folder = name.split("/")[0]
                if folder.endswith(".dist-info"):
                    if owners.setdefault(folder, wheel.name) != wheel.name or name.endswith("/WHEEL"):
                        continue
                elif name in merged and merged[name] != data:
                    raise LayerError(f"{wheel.name} and an earlier wheel disagree on {name}")
                merged[name] = data
    return merged


def _installed_name(name: str) -> Optional[str]:
    # A wheel's `<project>.data/purelib` and `platlib` install next to its packages; its scripts,
    # headers and data files have no place in a layer.
    if _is_skipped_metadata(name):
        return None
    parts = name.split("/")
    if parts[0].endswith(".data"):
        return "/".join(parts[2:]) if len(parts) > 2 and parts[1] in ("purelib", "platlib") else None
    return name


# ---- writing ----


def _manifest(version: str, architecture: Architecture) -> dict[str, object]:
    return {
        "name": "fastric",
        "version": version,
        "architecture": architecture.lambda_name,
        "compatible_architectures": [architecture.lambda_name],
        "compatible_runtimes": [f"python{v}" for v in PYTHON_VERSIONS] + list(CUSTOM_RUNTIMES),
        "exec_wrapper": f"/opt/{WRAPPER_NAME}",
        "bootstrap": f"/opt/{BOOTSTRAP_NAME}",
    }


def _script(comment: str, interpreter: str, stock_command: str) -> str:
    # The launcher travels inside single quotes, which it therefore never uses itself.
    assert "'" not in _LAUNCHER
    return _SCRIPT.format(comment=comment, interpreter=interpreter, launcher=_LAUNCHER, stock_command=stock_command)


def _zip_bytes(files: Mapping[str, bytes], executables: Mapping[str, bytes], comment: str) -> bytes:
    entries = {name: (data, _FILE_MODE) for name, data in files.items()}
    entries.update((name, (data, _EXECUTABLE_MODE)) for name, data in executables.items())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(set(_parents(entries)) | set(entries)):
            if name in entries:
                data, mode = entries[name]
                archive.writestr(_zip_info(name, mode), data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            else:
                archive.writestr(_zip_info(name, _DIRECTORY_MODE), b"")
        archive.comment = comment.encode()
    return buffer.getvalue()


def _parents(names: Iterable[str]) -> Iterator[str]:
    # Folder entries carry their permissions, so every unzip tool makes them readable by all.
    for name in names:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            yield "/".join(parts[:depth]) + "/"


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = _ZIP_UNIX
    info.external_attr = mode << 16
    if name.endswith("/"):
        info.external_attr |= 0x10  # the MS-DOS directory flag, which some unzip tools read instead
    return info
