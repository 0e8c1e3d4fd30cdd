"""Merge the identical modules of Amaranth's Verilog before a simulation build.

Amaranth emits one Verilog module per instance (``accelerator.tile0.tile``,
``accelerator.tile1.tile``, ...), so Verilator compiles every tile, checker and router once per
copy: the default accelerator's 7.8 MB of Verilog took 450 s to build, most of it four copies
of the same tile.  :func:`dedupe_modules` keeps one module of each set of identical modules and
points every instantiation at it; Verilator then compiles a shared module once.

Two modules are identical when their module items, compared as a set, are equal after a
one-to-one renaming of the generated names (escaped identifiers with a ``$123`` part:
``\\$auto$...$167``, ``\\i__payload$282``, ``\\port$32278$0``): an alpha-renaming of
the module's own identifiers, so the merged module computes the same thing.  Children are
merged first; a parent's instantiations are rewritten to the kept child, and their port
names (which may be generated, ``.\\port$33841$0``) to the kept child's names for the same
port.  The instance names, and so every hierarchical path a testbench uses, do not change.

Only the simulation builds use it (``sparsemac.sim.runner``); the Verilog users get from
``sparsemac generate`` is Amaranth's own.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["dedupe_modules"]

_MODULE = re.compile(r"^module (\S+)\s*\((.*?)\);\n(.*?)^endmodule\n", re.S | re.M)
#: A generated name: an escaped identifier with a numbered part (``\i__payload$282``,
#: ``\$auto$verilog_backend.cc:2355:dump_module$167``, ``\$12``, ``\port$32278$0``).
_NUMBER = re.compile(r"\\[^\s\\]*\$\d[^\s]*")
#: One instantiation in Yosys' ``write_verilog`` layout: the type, the instance name, the
#: named port connections one a line, ``);``.
_INSTANCE = re.compile(r"^  (\S+) +(\S+) +\(\n((?:    \..*\n)*)  \);\n", re.M)
_CONNECTION = re.compile(r"^    \.(\\\S+ |[A-Za-z_][\w$]*)\(", re.M)


def _items(text: str) -> list[str]:
    """``text`` (a module body) cut into its module items: a declaration, an assignment, an
    ``always`` block, an instantiation, an ```ifdef`` ... ```endif`` block, each with the
    attribute lines before it."""
    items, current, pending, in_ifdef = [], [], [], False
    for line in text.splitlines(keepends=True):
        if in_ifdef:
            current.append(line)
            in_ifdef = not line.startswith("`endif")
            continue
        starts = (line.startswith("`ifdef") or
                  (line.startswith("  ") and line[2:3] not in (" ", "")
                   and not line[2:].startswith(("end", ");"))))
        if line.lstrip().startswith("(*"):
            pending.append(line)
            continue
        if starts:
            if current:
                items.append("".join(current))
            current, pending = pending + [line], []
            in_ifdef = line.startswith("`ifdef")
        else:
            current.extend(pending + [line])
            pending = []
    current.extend(pending)
    if current:
        items.append("".join(current))
    return items


def _canonical(text: str, rounds: int = 4) -> tuple[dict[str, str], str]:
    """The renaming of ``text``'s generated names (``\\i__payload$282`` -> ``@k``) and the
    canonical text it gives: the renamed module items, sorted.

    Yosys orders declarations and cells by name, so the items' order and the names' first
    appearances follow the numbers.  ``k`` is therefore counted over the items sorted by a
    signature that does not depend on the names: each name gets a colour from the items it
    appears in (and where in them), refined ``rounds`` times, and an item's signature is
    its text with each name replaced by the name's colour.  Equal canonical texts mean the
    same items up to a one-to-one renaming, which is the same module."""
    texts = _items(text)
    items = [_NUMBER.split(item) for item in texts]
    names = [_NUMBER.findall(item) for item in texts]
    colour = {name: "" for found in names for name in found}

    def signature(parts: list[str], found: list[str]) -> str:
        out = [parts[0]]
        for name, part in zip(found, parts[1:]):
            out.append("@" + colour[name])
            out.append(part)
        return hashlib.sha1("".join(out).encode()).hexdigest()[:16]

    for _ in range(rounds):
        signatures = [signature(p, f) for p, f in zip(items, names)]
        seen: dict[str, list[str]] = {name: [] for name in colour}
        for sig, found in zip(signatures, names):
            for position, name in enumerate(found):
                seen[name].append(f"{sig}:{position}")
        colour = {name: hashlib.sha1(",".join(sorted(where)).encode()).hexdigest()[:16]
                  for name, where in seen.items()}
    order = sorted(range(len(items)), key=lambda i: signature(items[i], names[i]))
    renaming: dict[str, str] = {}
    for i in order:
        for name in names[i]:
            renaming.setdefault(name, f"@{len(renaming)}")
    canonical = sorted(_apply(texts[i], renaming) for i in order)
    return renaming, "".join(canonical)


def _apply(text: str, names: dict[str, str]) -> str:
    return _NUMBER.sub(lambda m: names.get(m.group(0), m.group(0)), text)


class _Module:
    def __init__(self, name: str, ports: str, body: str):
        self.name, self.ports, self.body = name, ports, body
        self.key = ""                       # the canonical text's hash
        self.canon: dict[str, str] = {}     # generated name -> @k
        self.keep: _Module = self           # the module this one is merged into


def dedupe_modules(verilog: str) -> str:
    """``verilog`` (Yosys ``write_verilog`` output) with each set of identical modules merged
    into its first module (see the module documentation)."""
    modules: dict[str, _Module] = {}
    for match in _MODULE.finditer(verilog):
        modules[match.group(1)] = _Module(*match.groups())
    if len(modules) < 2:
        return verilog
    kept: dict[str, _Module] = {}
    done: set[str] = set()

    def visit(module: _Module) -> None:
        if module.name in done:
            return
        done.add(module.name)
        children = [m.group(1) for m in _INSTANCE.finditer(module.body)
                    if m.group(1) in modules]
        for child in children:
            visit(modules[child])
        module.body, canonical = _rewrite(module.body, modules)
        module.canon, text = _canonical(canonical)
        own_ports = sorted(_apply(p.strip(), module.canon) for p in module.ports.split(","))
        text = ",".join(own_ports) + "\n" + text
        module.key = hashlib.sha256(text.encode()).hexdigest()
        module.keep = kept.setdefault(module.key, module)

    for module in modules.values():
        visit(module)

    def emit(match: re.Match) -> str:
        module = modules[match.group(1)]
        if module.keep is not module:
            return ""
        return match.string[match.start():match.start(3)] + module.body + "endmodule\n"

    return _MODULE.sub(emit, verilog)


def _rewrite(body: str, modules: dict[str, _Module]) -> tuple[str, str]:
    """``body`` with every instantiation of a merged module pointed at the kept one (type
    and port names), and the canonical text used for comparison: instance types by their
    key, connection names by the child's canonical port names (not renamed again)."""
    out, canon, pos = [], [], 0
    for inst in _INSTANCE.finditer(body):
        child = modules.get(inst.group(1))
        if child is None:
            continue
        out.append(body[pos:inst.start()])
        canon.append(body[pos:inst.start()])
        keep = child.keep
        back = {v: k for k, v in keep.canon.items()}
        new_lines, canon_lines = [], []
        for line in inst.group(3).splitlines(keepends=True):
            conn = _CONNECTION.match(line)
            port = conn.group(1)
            canonical = _apply(port, child.canon)
            mapped = re.sub(r"@\d+", lambda m, back=back: back[m.group(0)], canonical)
            new_lines.append(line[:conn.start(1)] + mapped + line[conn.end(1):])
            canon_lines.append("    .<" + canonical + ">"
                               + line[conn.end(1):].rstrip().rstrip(",") + "\n")
        head = f"  {keep.name}  {inst.group(2)} (\n"
        out.append(head + "".join(new_lines) + "  );\n")
        canon.append(f"  <{keep.key}>  {inst.group(2)} (\n" + "".join(sorted(canon_lines))
                     + "  );\n")
        pos = inst.end()
    out.append(body[pos:])
    canon.append(body[pos:])
    return "".join(out), "".join(canon)
