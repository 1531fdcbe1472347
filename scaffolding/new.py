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
import string
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from soa import idl as soa_idl
from soa.config import DEFAULT_FILE
from soa.errors import ConfigError, SoaError
from soa.idl_docs import method_docs, service_docs

from .pytypes import TypeNamer, field_name, fields
from .yaml_append import plan_append

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9_-]*")
MAX_LINE = 88  # ruff's and black's default line length: generated code fits any project


class ScaffoldError(SoaError):
    """The scaffold cannot be written as asked (e.g. it would overwrite files)."""


@dataclass(frozen=True)
class Method:
    name: str
    params: tuple  # ((python name, hint, sample expression), ...)
    returns: str
    oneway: bool
    doc: str


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
        "class_doc": _docstring(_class_doc(service_name, service_docs(idl_file)), " " * 4),
    }
    scaffold = Scaffold(root, name, service_name, handler,
                        yaml_path=Path(yaml_path or root / DEFAULT_FILE))
    services_dir = root / "services"
    scaffold.optional_files[services_dir / "__init__.py"] = '"""The project\'s services."""\n'
    package = services_dir / pkg
    intro = _prose(f"The {name} service ({service_name}); its handler is {cls} in handler.py.")
    short = "\n" not in intro and len(intro) + 6 <= MAX_LINE
    scaffold.files[package / "__init__.py"] = f'"""{intro}"""\n' if short else f'"""{intro}\n"""\n'

    scaffold.files[package / "handler.py"] = _handler(values, methods)
    scaffold.files[root / "tests" / f"test_service_{pkg}.py"] = _test_module(values, methods)
    scaffold.yaml_fields = {"idl": idl_rel, "service": service_name, "handler": handler, "port": 0}
    return scaffold


def _class_doc(service_name, docs):
    parts = [f"Serves {service_name}."]
    if docs.get(service_name, "").strip():
        parts.append(docs[service_name].strip())
    parts.append("``context`` is the service's ServiceContext: ``config``, ``service``, ``idl``,"
                 " ``data_dir``, and ``client(name)`` to call other services.")
    return "\n\n".join(parts)


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


def _render(template, values):
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    return string.Template(text).substitute(values)


def _render_file(template, values):
    return _render(template, values).rstrip("\n") + "\n"


def _handler(values, methods):
    blocks = []
    for m in methods:
        doc = m.doc or f"{values['service']}.{m.name} (undocumented in the IDL)."
        message = _not_implemented(values, m)
        blocks.append(_render("handler_method.py.tmpl", {
            **values,
            "method": m.name,
            "signature": _signature(m),
            "docstring": _docstring(doc, " " * 8),
            "raise_stmt": _fit(f"raise NotImplementedError({message})",
                               ["raise NotImplementedError(", f"    {message}", ")"], " " * 8),
        }))
    intro = _prose(
        f"The {values['name']} service: implements {values['service']} from"
        f" {values['idl_rel']}.",
        "Generated by `soa new`. Every method raises NotImplementedError until you write it;"
        " a caller sees that as a TApplicationException (INTERNAL_ERROR) that names the method.",
    )
    return _render_file("handler.py.tmpl", {**values, "methods": "".join(blocks),
                                            "intro": intro})


def _signature(m):
    params = ["self"] + [f"{name}: {hint}" for name, hint, _ in m.params]
    one_line = f"{m.name}({', '.join(params)}) -> {m.returns}"
    if len(one_line) + 8 <= MAX_LINE:
        return one_line
    inner = "".join(f"        {p},\n" for p in params)
    return f"{m.name}(\n{inner}    ) -> {m.returns}"


def _not_implemented(values, m):
    return f'"{values["name"]}.{m.name} is not implemented yet"'


def _prose(*paragraphs):
    """Paragraphs filled to the line length, for module docstrings (the first line after
    the opening quotes)."""
    filled = [textwrap.fill(p, MAX_LINE, initial_indent="   ")[3:] if i == 0
              else textwrap.fill(p, MAX_LINE) for i, p in enumerate(paragraphs)]
    return "\n\n".join(filled)


def _fit(one_line, lines, indent):
    """``one_line`` when it fits at ``indent``, else ``lines`` joined, each further one indented."""
    if len(indent) + len(one_line) <= MAX_LINE:
        return one_line
    return lines[0] + "".join(f"\n{indent}{line}" for line in lines[1:])


def _docstring(doc, indent):
    doc = doc.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    width = MAX_LINE - len(indent)
    lines = []
    for line in doc.splitlines():
        if len(line) <= width - 3:
            lines.append(line)
        else:  # re-wrap only the lines that are too long; keep the author's layout otherwise
            lead = line[: len(line) - len(line.lstrip())]
            lines += textwrap.wrap(line, width - 3, subsequent_indent=lead) or [""]
    first, *rest = lines
    if not rest and len(indent) + len(first) + 6 <= MAX_LINE:
        return f'{indent}"""{first}"""'
    body = "".join(f"\n{indent}{line}".rstrip(" ") for line in rest)
    return f'{indent}"""{first}{body}\n{indent}"""'


def _call(method, samples, indent):
    one_line = f"client.{method}({', '.join(samples)})"
    if len(indent) + len(one_line) <= MAX_LINE:
        return one_line
    inner = "".join(f"{indent}    {sample},\n" for sample in samples)
    return f"client.{method}(\n{inner}{indent})"


def _test_module(values, methods):
    blocks = []
    for m in methods:
        samples = [sample for _, _, sample in m.params]
        template = "test_oneway.py.tmpl" if m.oneway else "test_method.py.tmpl"
        call = _call(m.name, samples, " " * (4 if m.oneway else 8))
        message = _not_implemented(values, m)
        assert_stmt = _fit(f"assert {message} in str(error.value)",
                           ["assert (", f"    {message}", "    in str(error.value)", ")"], " " * 4)
        blocks.append(_render(template, {**values, "method": m.name, "call": call,
                                         "assert_stmt": assert_stmt}))
    uses_module = any(f"{values['module']}." in block for block in blocks)
    load = _render("test_idl_load.py.tmpl", values) if uses_module else ""
    imports = ["import pytest", "import soa.idl" if uses_module else "import soa"]
    if not all(m.oneway for m in methods):
        imports.append("from thriftpy2.thrift import TApplicationException")
    intro = _prose(
        f"Tests of the {values['name']} service ({values['service']}), generated by `soa new`.",
        f"The ``client`` fixture serves {values['name']} as soa.yaml describes it, against the"
        " test etcd (the soa pytest plugin's ``etcd_config``: a real etcd, with a key prefix of"
        " this test's own), and yields a soa client that finds it through the registry. Every"
        ' method starts out raising "not implemented": replace each assertion with the real one'
        " as you implement the method.",
    )
    return _render_file("test_service.py.tmpl", {"intro": intro, **values, "tests": "".join(blocks),
                                            "idl_load": load, "imports": "\n".join(imports)})


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
