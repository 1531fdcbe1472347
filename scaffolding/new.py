"""``soa new``: a working service skeleton generated from a Thrift IDL.

``plan(...)`` works out everything (the handler, its package, a test module and the soa.yaml
entry) without touching the disk; ``Scaffold.write(force)`` then writes it, refusing to
overwrite files unless forced. Layout, relative to the project root (the folder of soa.yaml):

    services/<pkg>/__init__.py
    services/<pkg>/handler.py        the handler class, one method per IDL method
    tests/test_service_<pkg>.py      starts the service against a real etcd, calls every method
    soa.yaml                         services.<name>: idl, service, handler, port 0

``<pkg>`` is the service name with ``-`` turned into ``_`` so that it imports.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from soa import idl as soa_idl
from soa.config import DEFAULT_FILE
from soa.errors import ConfigError, SoaError
from soa.idl_docs import method_docs, service_docs

from .pytypes import TypeNamer, field_name, fields
from .render import MAX_LINE, Method, class_doc, docstring, handler_module, prose, test_module
from .yaml_append import plan_append

NAME = re.compile(r"[a-z][a-z0-9_-]*")


class ScaffoldError(SoaError):
    """The scaffold cannot be written as asked (e.g. it would overwrite files)."""


@dataclass
class Scaffold:
    """Everything ``soa new`` will write. ``files`` maps absolute paths to their text."""

    root: Path
    name: str
    thrift_service: str
    handler: str
    files: dict = field(default_factory=dict)
    optional_files: dict = field(default_factory=dict)  # written only when missing
    yaml_path: Path = None
    yaml_fields: dict = field(default_factory=dict)

    def conflicts(self):
        """Files that exist already, and the soa.yaml entry when it exists."""
        clash = [str(p.relative_to(self.root)) for p in self.files if p.exists()]
        if self.yaml_path.exists():
            try:
                current = _parse_yaml(self.yaml_path)
            except ConfigError:
                current = {}
            if self.name in current:
                clash.append(f"{self.yaml_path.name}: services.{self.name}")
        return clash

    def write(self, force=False):
        """Write the files and the soa.yaml entry; returns the paths written (relative)."""
        clash = self.conflicts()
        if clash and not force:
            raise ScaffoldError(
                f"would overwrite {', '.join(clash)} (use --force to overwrite)"
            )
        edit = plan_append(self.yaml_path, self.name, self.yaml_fields, replace=force)
        written = []
        for path, text in self.optional_files.items():
            if not path.exists():
                written.append(_write(path, text))
        for path, text in self.files.items():
            written.append(_write(path, text))
        edit.write()
        written.append(self.yaml_path)
        return [str(p.relative_to(self.root)) for p in written]


def find_root(config_path=None, cwd=None):
    """(project root, soa.yaml path): the given file's folder, else the nearest folder from
    ``cwd`` upwards holding soa.yaml, else ``cwd`` (where soa.yaml will be created)."""
    cwd = Path(cwd or Path.cwd()).resolve()
    if config_path:
        path = Path(config_path).resolve()
        return path.parent, path
    for folder in (cwd, *cwd.parents):
        if (folder / DEFAULT_FILE).is_file():
            return folder, folder / DEFAULT_FILE
    return cwd, cwd / DEFAULT_FILE


def plan(name, idl_path, root, yaml_path=None, thrift_service=None):
    """Work out the scaffold for service ``name`` from ``idl_path``; nothing is written.

    Raises ``IdlError`` when the IDL does not load and ``ConfigError`` for a bad name or service.
    """
    if not NAME.fullmatch(name):
        raise ConfigError(f"service name {name!r}: use lower-case letters, digits, - and _,"
                          " starting with a letter")
    root = Path(root).resolve()
    idl_file = Path(idl_path).resolve()
    module = soa_idl.load(idl_file)
    service_name = _pick_service(module, thrift_service, idl_path)
    service = soa_idl.find_service(module, service_name)
    pkg = name.replace("-", "_")
    module_name = re.sub(r"\W", "_", idl_file.stem) + "_thrift"
    cls = "".join(part.capitalize() for part in re.split(r"[_-]", name)) + "Handler"
    idl_rel = Path(os.path.relpath(idl_file, root)).as_posix()
    handler = f"services.{pkg}.handler:{cls}"
    methods = _methods(module, service, module_name, idl_file)
    values = {
        "name": name, "pkg": pkg, "service": service_name, "cls": cls, "module": module_name,
        "idl_rel": idl_rel, "handler": handler,
        "class_doc": docstring(class_doc(service_name, service_docs(idl_file)), " " * 4),
    }
    scaffold = Scaffold(root, name, service_name, handler,
                        yaml_path=Path(yaml_path or root / DEFAULT_FILE))
    services_dir = root / "services"
    scaffold.optional_files[services_dir / "__init__.py"] = '"""The project\'s services."""\n'
    package = services_dir / pkg
    intro = prose(f"The {name} service ({service_name}); its handler is {cls} in handler.py.")
    short = "\n" not in intro and len(intro) + 6 <= MAX_LINE
    scaffold.files[package / "__init__.py"] = f'"""{intro}"""\n' if short else f'"""{intro}\n"""\n'

    scaffold.files[package / "handler.py"] = handler_module(values, methods)
    scaffold.files[root / "tests" / f"test_service_{pkg}.py"] = test_module(values, methods)
    scaffold.yaml_fields = {"idl": idl_rel, "service": service_name, "handler": handler, "port": 0}
    return scaffold


def _pick_service(module, wanted, idl_path):
    names = soa_idl.service_names(module)
    if wanted:
        if wanted not in names:
            raise ConfigError(f"defines no service {wanted!r} (it defines: "
                              f"{', '.join(names) or 'none'})", source=str(idl_path))
        return wanted
    if len(names) != 1:
        raise ConfigError(f"defines {len(names)} services ({', '.join(names) or 'none'});"
                          " choose one with --service", source=str(idl_path))
    return names[0]


def _doc_of(service, method, idl_file, files):
    """The doc comment of ``method``, read from the file of the service that declares it (a
    base service may live in an included file). ``files`` caches ``method_docs`` per file."""
    for cls in service.__mro__:
        if f"{method}_args" in vars(cls):
            path = getattr(cls, "__thrift_file__", None) or idl_file
            if path not in files:
                files[path] = method_docs(path)
            return files[path].get(cls.__name__, {}).get(method, "")
    return ""


def _methods(module, service, module_name, idl_file):
    namer = TypeNamer(module, module_name)
    files = {}
    out = []
    for method in soa_idl.methods(service):
        args = getattr(service, f"{method}_args")
        result = getattr(service, f"{method}_result")
        params = tuple(
            (field_name(name), namer.hint(ttype, targs), namer.sample(ttype, targs))
            for _, name, ttype, targs, _ in fields(args.thrift_spec)
        )
        success = result.thrift_spec.get(0)
        returns = "None"
        if success is not None:
            returns = namer.hint(success[0], success[2] if len(success) == 4 else None)
        oneway = bool(getattr(result, "oneway", False))
        doc = _doc_of(service, method, idl_file, files)
        out.append(Method(method, params, returns, oneway, doc))
    return out


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _parse_yaml(path):
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError("invalid YAML", source=str(path)) from e
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}
