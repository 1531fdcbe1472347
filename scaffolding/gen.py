"""``soa gen``: client code for Go, PHP and Node.js from Thrift IDL, by the Apache Thrift compiler.

The compiler writes into a fresh temporary folder, which then replaces the generated part of the
output folder, so code for types removed from the IDL does not linger. Around it goes the manifest
each ecosystem needs to use the code directly:

- go:   ``go.mod`` (module path from ``--module``) requiring ``github.com/apache/thrift`` at the
        compiler's version; packages under their IDL namespace (``shop/catalog``), importing each
        other through the module path.
- php:  ``composer.json`` with a PSR-4 mapping for each generated namespace, code under ``src/``.
- node: ``package.json`` depending on ``thrift``, code under ``gen-nodejs/``, and an ``index.js``
        exporting every generated module by name.

Manifests are written when missing and kept when present (they are the user's to edit).
"""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from soa import idl as soa_idl
from soa.errors import IdlError, SoaError

LANGUAGES = ("go", "php", "node")
INSTALL_HINT = "apt-get install thrift-compiler"
DEFAULT_VERSION = "0.17.0"


class CompilerMissing(SoaError):
    """The Apache Thrift compiler is not installed."""


@dataclass
class Generated:
    language: str
    out: Path
    files: list = field(default_factory=list)  # generated source files, relative to out
    manifest: Path = None
    manifest_written: bool = False


def compiler():
    """Path of the ``thrift`` executable; ``CompilerMissing`` (with the install command) if none."""
    path = shutil.which("thrift")
    if path is None:
        raise CompilerMissing(
            f"the Apache Thrift compiler `thrift` is not installed; install it with: {INSTALL_HINT}"
        )
    return path


def compiler_version(thrift=None):
    """The compiler's version, e.g. ``"0.17.0"``."""
    out = subprocess.run([thrift or compiler(), "--version"], capture_output=True, text=True,
                         check=False, timeout=30).stdout
    m = re.search(r"(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else DEFAULT_VERSION


def run_compiler(idl, out_dir, generator, thrift=None, include_dirs=()):
    """Run ``thrift -r --gen <generator> -out <out_dir> <idl>``; ``IdlError`` naming file:line.

    ``include_dirs`` become ``-I`` options (where included files are looked for).
    """
    thrift = thrift or compiler()
    idl = Path(idl).resolve()
    if not idl.is_file():
        raise IdlError("no such IDL file", source=str(idl))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [thrift, "-r", *_includes(include_dirs), "--gen", generator, "-out", str(out_dir),
         str(idl)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    if proc.returncode != 0:
        raise compiler_error(proc.stderr or proc.stdout, idl)
    return proc


def _includes(include_dirs):
    return [arg for d in include_dirs or () for arg in ("-I", str(d))]


def compiler_error(output, idl):
    """One-line ``IdlError`` from the compiler's ``[ERROR:file:line] (last token ...)\\nwhy``."""
    m = re.search(r"\[(?:ERROR|FAILURE):([^\]]*?):(\d+)\]\s*(.*)", output)
    if m:
        rest = output[m.end():].strip().splitlines()
        why = " ".join(p for p in (rest[0].strip() if rest else "", m.group(3).strip()) if p)
        where = f"{m.group(1)}:{m.group(2)}"
        return IdlError(why or "the Thrift compiler rejected it", source=where)
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return IdlError(lines[-1] if lines else "the Thrift compiler failed", source=str(idl))


def generate(language, idl, out, module=None, package=None):
    """Generate ``language`` client code for ``idl`` into folder ``out``; returns ``Generated``.

    ``module`` is the Go module path (required for go); ``package`` names the composer/npm
    package (default ``soa/<idl>-client`` / ``<idl>-client``).
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    if language == "go" and not module:
        raise SoaError("go needs a module path: --module example.com/shop/client")
    thrift = compiler()
    version = compiler_version(thrift)
    idl = Path(idl).resolve()
    soa_idl.load(idl)  # thriftpy2 names the line of more errors than the compiler does
    out = Path(out).resolve()
    stem = re.sub(r"[^a-z0-9-]+", "-", idl.stem.lower()).strip("-") or "thrift"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soa-gen-") as tmp:
        tmp = Path(tmp)
        if language == "go":
            run_compiler(idl, tmp, f"go:package_prefix={module.rstrip('/')}/,skip_remote", thrift)
            result = _place(tmp, out, [p.name for p in tmp.iterdir()], language)
            result.manifest = out / "go.mod"
            text = _go_mod(module, version)
        elif language == "php":
            run_compiler(idl, tmp, "php", thrift)
            result = _place(tmp, out / "src", [p.name for p in tmp.iterdir()], language, out)
            result.manifest = out / "composer.json"
            text = _composer_json(package or f"soa/{stem}-client", result.files, idl, version)
        else:
            run_compiler(idl, tmp / "gen-nodejs", "js:node", thrift)
            result = _place(tmp, out, ["gen-nodejs"], language)
            result.manifest = out / "package.json"
            text = _package_json(package or f"{stem}-client", idl, version)
            (out / "index.js").write_text(_index_js(result.files), encoding="utf-8")
            result.files.append("index.js")
    if not result.manifest.exists():
        result.manifest.write_text(text, encoding="utf-8")
        result.manifest_written = True
    return result


def _place(tmp, dest, names, language, out=None):
    """Move the generated top-level entries ``names`` from ``tmp`` into ``dest``, replacing."""
    out = out or dest
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = dest / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(tmp / name), str(target))
    files = sorted(
        str(p.relative_to(out)) for name in names for p in (dest / name).rglob("*") if p.is_file()
    )
    files += sorted(str((dest / n).relative_to(out)) for n in names if (dest / n).is_file())
    return Generated(language, out, files)


def _go_mod(module, version):
    return (
        f"// Generated by `soa gen go`: Thrift client code. Run `go mod tidy` to pin go.sum.\n"
        f"module {module}\n\ngo 1.21\n\nrequire github.com/apache/thrift v{version}\n"
    )


def _composer_json(package, files, idl, version):
    php = [Path(f) for f in files if f.endswith(".php")]
    namespaces = sorted({str(f.parent.relative_to("src")) for f in php})
    psr4 = {}
    for ns in namespaces:
        if ns == ".":
            psr4[""] = "src/"
        else:
            psr4[ns.replace("/", "\\") + "\\"] = f"src/{ns}/"
    data = {
        "name": package,
        "description": f"Thrift client code for {idl.name}, generated by soa gen",
        "type": "library",
        "require": {"php": ">=7.1", "apache/thrift": f"^{version}"},
        "autoload": {"psr-4": psr4},
    }
    return json.dumps(data, indent=4) + "\n"


def _package_json(package, idl, version):
    data = {
        "name": package,
        "version": "0.1.0",
        "description": f"Thrift client code for {idl.name}, generated by soa gen",
        "main": "index.js",
        "private": True,
        "dependencies": {"thrift": f"^{version}"},
    }
    return json.dumps(data, indent=2) + "\n"


def _index_js(files):
    lines = ["// Generated by `soa gen node`: every generated module, by name.",
             "module.exports = {"]
    for f in files:
        if f.endswith(".js"):
            name = Path(f).stem
            lines.append(f"  {json.dumps(name)}: require({json.dumps('./' + f)}),")
    lines.append("};")
    return "\n".join(lines) + "\n"
