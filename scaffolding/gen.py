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

Next to the code goes the service's identity, so the soa plugins can apply the client's
``idl_mismatch`` policy against the registry's ``idl_hash`` (registry/SCHEMA.md):

- go:   ``soa_idl.go`` in the service's package: ``const SoaService`` and ``const SoaIDLHash``;
- node: ``soa_idl.js`` at the package root: ``module.exports = { service, idlHash }``;
- php:  ``SoaIdl.php`` in the service's namespace: ``final class SoaIdl`` with ``SERVICE`` and
        ``IDL_HASH``.

The service is the IDL's only one, or the one named by ``service``; its soa name (``soa-service``,
the registry key's service) is ``name``, by default the Thrift name without ``Service``, in snake
case (``CatalogService`` -> ``catalog``).
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


def generate(language, idl, out, module=None, package=None, service=None, name=None):
    """Generate ``language`` client code for ``idl`` into folder ``out``; returns ``Generated``.

    ``module`` is the Go module path (required for go); ``package`` names the composer/npm
    package (default ``soa/<idl>-client`` / ``<idl>-client``). ``service`` picks the Thrift
    service whose identity is written (needed when the IDL defines several), ``name`` its soa name.
    An IDL without a service gets no identity file.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    if language == "go" and not module:
        raise SoaError("go needs a module path: --module example.com/shop/client")
    thrift = compiler()
    version = compiler_version(thrift)
    idl = Path(idl).resolve()
    identity = service_identity(soa_idl.load(idl), service, name)  # thriftpy2 names more lines
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
            if identity:
                result.files.append(_write_go_identity(out, result.files, *identity))
        elif language == "php":
            run_compiler(idl, tmp, "php", thrift)
            result = _place(tmp, out / "src", [p.name for p in tmp.iterdir()], language, out)
            result.manifest = out / "composer.json"
            if identity:
                result.files.append(_write_php_identity(out, result.files, *identity))
            text = _composer_json(package or f"soa/{stem}-client", result.files, idl, version)
        else:
            run_compiler(idl, tmp / "gen-nodejs", "js:node", thrift)
            result = _place(tmp, out, ["gen-nodejs"], language)
            result.manifest = out / "package.json"
            text = _package_json(package or f"{stem}-client", idl, version)
            (out / "index.js").write_text(_index_js(result.files), encoding="utf-8")
            result.files.append("index.js")
            if identity:
                (out / "soa_idl.js").write_text(_node_identity(*identity), encoding="utf-8")
                result.files.append("soa_idl.js")
    if not result.manifest.exists():
        result.manifest.write_text(text, encoding="utf-8")
        result.manifest_written = True
    return result


def service_identity(module, service=None, name=None):
    """``(thrift_name, soa_name, idl_hash)`` of the chosen service, or None without services."""
    names = soa_idl.service_names(module)
    if service is None:
        if not names:
            return None
        if len(names) > 1:
            raise SoaError(f"the IDL defines {len(names)} services ({', '.join(names)}); "
                           "choose one with --service")
        service = names[0]
    found = soa_idl.find_service(module, service)
    if found is None:
        raise SoaError(f"no service {service!r} in the IDL (it has: {', '.join(names) or 'none'})")
    return service, name or soa_name(service), soa_idl.idl_hash(found)


def soa_name(thrift_name):
    """``CatalogService`` -> ``catalog``, ``FlashSaleService`` -> ``flash_sale``."""
    base = thrift_name[:-len("Service")] if thrift_name.endswith("Service") else thrift_name
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", base or thrift_name).lower()


def _write_go_identity(out, files, thrift_name, name, digest):
    """``soa_idl.go`` beside the file that declares ``<thrift_name>Client``."""
    marker = re.compile(rf"^type {re.escape(thrift_name)}Client struct", re.M)
    for rel in files:
        path = out / rel
        if rel.endswith(".go") and marker.search(path.read_text(encoding="utf-8")):
            package = re.search(r"^package (\w+)", path.read_text(encoding="utf-8"), re.M).group(1)
            target = path.parent / "soa_idl.go"
            target.write_text(
                "// Code generated by soa gen. DO NOT EDIT.\n\n"
                f"package {package}\n\n"
                f"// SoaService is the soa name of {thrift_name}: its registry key and"
                " soa-service.\n"
                f"const SoaService = {json.dumps(name)}\n\n"
                f"// SoaIDLHash is {thrift_name}'s idl_hash, for the plugin's IDL mismatch"
                " policy.\n"
                f"const SoaIDLHash = {json.dumps(digest)}\n", encoding="utf-8")
            return str(target.relative_to(out))
    raise SoaError(f"the compiler wrote no Go client for {thrift_name}")


def _write_php_identity(out, files, thrift_name, name, digest):
    """``SoaIdl.php`` beside ``<thrift_name>Client.php``, in its namespace."""
    for rel in files:
        path = out / rel
        if path.name == f"{thrift_name}Client.php":
            namespace = re.search(r"^namespace ([\w\\]+);", path.read_text(encoding="utf-8"), re.M)
            header = f"namespace {namespace.group(1)};\n\n" if namespace else ""
            target = path.parent / "SoaIdl.php"
            target.write_text(
                "<?php\n// Generated by soa gen: the identity of the service this client calls.\n"
                f"{header}final class SoaIdl\n{{\n"
                f"    /** The soa name of {thrift_name}: its registry key and soa-service. */\n"
                f"    const SERVICE = {json.dumps(name)};\n"
                f"    /** {thrift_name}'s idl_hash, for the plugin's IDL mismatch policy. */\n"
                f"    const IDL_HASH = {json.dumps(digest)};\n}}\n", encoding="utf-8")
            return str(target.relative_to(out))
    raise SoaError(f"the compiler wrote no PHP client for {thrift_name}")


def _node_identity(thrift_name, name, digest):
    return ("// Generated by `soa gen node`: the identity of the service this client calls\n"
            f"// ({thrift_name}), for the plugin's IDL mismatch policy.\n"
            f"module.exports = {{ service: {json.dumps(name)}, idlHash: {json.dumps(digest)} }};\n")


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
