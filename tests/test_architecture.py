"""The layering of the package, read from its imports: each layer imports only those below it,
and no module imports itself back through others (no cycles).

    cli, api                        the clients' side: parse, call, render
    operations                      named operations: typed request + caller -> records; roles declared
    ingestd, retention              the daemon's work and the retention rules on the vault
    devices, vault                  udev and mounts; the evidence store
    config, errors, rules           at the bottom: settings, errors, the regulation's numbers
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "custody"

# Which layers each layer may import (besides itself).
ALLOWED = {
    "i18n": set(),  # the catalogs (Babel), at the bottom: any layer may speak the person's language
    "errors": {"i18n"},
    "rules": set(),
    "config": {
        "config_alerts",
        "config_cases",
        "config_profiles",
        "config_supervision",
        "config_toml",
        "errors",
        "rules",
    },
    "config_alerts": {"errors"},  # [alerts] likewise
    "config_toml": {"config_alerts", "config_cases", "rules"},  # the generated custody.toml's text
    "config_cases": {"errors", "rules"},  # [cases] of the config, in a file of its own
    "config_supervision": {"errors"},  # [supervision] likewise
    "config_profiles": {"errors"},  # [profiles.NAME] likewise
    "devices": {"config", "errors", "rules"},
    "vault": {"config", "errors", "rules"},
    "retention": {"vault", "config", "errors", "rules"},
    "ingestd": {"devices", "vault", "config", "errors", "rules"},
    "operations": {"ingestd", "retention", "devices", "vault", "config", "errors", "rules"},
    "api": {"operations", "ingestd", "retention", "devices", "vault", "config", "errors", "rules"},
    "listing": {"vault", "config", "errors", "rules"},
    "web": {"ingestd", "vault", "config", "errors", "rules"},
    "cli": {
        "web",
        "api",
        "operations",
        "listing",
        "ingestd",
        "retention",
        "devices",
        "vault",
        "config",
        "errors",
        "rules",
        "custody",
    },
    "__main__": {"cli"},
    "custody": set(),  # the package's __init__
}
for _layer, _uses in ALLOWED.items():  # whoever may use the config may use all of it
    if _layer != "i18n":
        _uses.add("i18n")
    if "config" in _uses:
        _uses.update({"config_alerts", "config_cases", "config_profiles", "config_supervision"})


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path], top_level_only: bool) -> set[str]:
    """The custody modules ``path`` imports (``from pkg import sub`` names the submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "custody"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "custody":
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known.keys()
            names |= submodules or {node.module}
    resolved = set()
    for name in names:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        resolved.add(name)
    return resolved


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_import_goes_down_the_layers():
    known = modules()
    assert len(known) > 40, f"found only {len(known)} modules under {PACKAGE}"
    wrong = []
    for module, path in sorted(known.items()):
        for target in sorted(imports(path, known, top_level_only=False)):
            here, there = layer(module), layer(target)
            assert here in ALLOWED, f"{module}: layer {here!r} is not in the map above; add it"
            if here != there and there not in ALLOWED[here]:
                wrong.append(f"{module} imports {target} ({here} -> {there})")
    assert wrong == [], "imports against the layering:\n" + "\n".join(wrong)


def test_no_module_imports_itself_back():
    known = modules()
    graph = {module: imports(path, known, top_level_only=True) - {module} for module, path in known.items()}
    # A package's __init__ importing its own submodules is how packages are made, not a cycle.
    for module in graph:
        graph[module] = {t for t in graph[module] if not (module.startswith(t + ".") and t in known)}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_layer_check_catches_a_back_edge(tmp_path):
    """The check can fail: a vault module importing the daemon is reported."""
    known = {"custody.vault.x": tmp_path / "x.py", "custody.ingestd.daemon": tmp_path / "d.py"}
    (tmp_path / "x.py").write_text("from custody.ingestd.daemon import Daemon\n")
    [target] = imports(known["custody.vault.x"], known, top_level_only=False)
    assert layer(target) == "ingestd" and "ingestd" not in ALLOWED["vault"]


def test_every_module_imports():
    """A rename must not leave a module that fails to import (found only when its one command runs)."""
    import importlib

    for module in sorted(modules()):
        if module != "custody.__main__":
            importlib.import_module(module)


def test_nothing_below_the_command_line_imports_click():
    """The daemon serves named operations, never a command line: click is the command line's alone
    (and the web platform's framework will be the web's alone)."""
    found = []
    for module, path in sorted(modules().items()):
        if layer(module) in ("cli", "__main__"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("click", "rich") for name in names):
                found.append(f"{module} imports {names}")
    assert found == [], "\n".join(found)


def test_no_module_nor_function_grows_past_what_one_person_reads_at_once():
    """vault.py keeps only the vault's lifecycle, authorize and the change primitive (the services
    hold the rest): at most 600 lines; no module over 800; no function over 80."""
    too_long = []
    for module, path in sorted(modules().items()):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        limit = 600 if module == "custody.vault.vault" else 800
        if lines > limit:
            too_long.append(f"{module}: {lines} lines (at most {limit})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_long.append(f"{module}.{node.name}: {length} lines (at most 80)")
    assert too_long == [], "\n".join(too_long)


# What holds the vault's lock (an RLock the daemon's workers share with its one catalog
# connection): the services' decorators, and the blocks that take it.
LOCKING_DECORATORS = {"locked", "_locked"}
LOCKING_BLOCKS = (".serialized()", ".change()")
SERVICE_VAULT = ("self.vault", "vault")  # (``vault = self.vault`` in many methods)


def catalog_reads_outside_the_lock(source: str) -> list[str]:
    """Public methods of the vault's services that touch ``self.vault.catalog`` (or ``vault.catalog``)
    without its lock:
    neither decorated ``@locked`` nor inside ``with self.vault.serialized()`` / ``change()``."""

    def unguarded(node: ast.AST, guarded: bool) -> list[int]:
        if isinstance(node, ast.With) and any(
            ast.unparse(item.context_expr).endswith(LOCKING_BLOCKS) for item in node.items
        ):
            guarded = True
        found = []
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "catalog"
            and ast.unparse(node.value) in SERVICE_VAULT
        ):
            found = [] if guarded else [node.lineno]
        return found + [line for child in ast.iter_child_nodes(node) for line in unguarded(child, guarded)]

    found = []
    for cls in [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]:
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef) or method.name.startswith("_"):
                continue
            if {ast.unparse(d) for d in method.decorator_list} & LOCKING_DECORATORS:
                continue
            if lines := unguarded(method, False):
                found.append(f"{cls.name}.{method.name} reads the catalog unlocked at lines {lines}")
    return found


def test_every_service_method_holds_the_vaults_lock_while_it_reads_the_catalog():
    """The daemon's workers share one catalog connection: a service method that reads it without
    the lock can see another thread's transaction half done, or break its cursor. (Inserting a
    method above ``dispose_item`` once took its ``@locked`` away, unnoticed.)"""
    found = []
    for module, path in sorted(modules().items()):
        if module.startswith("custody.vault."):
            found += [f"{module}: {line}" for line in catalog_reads_outside_the_lock(path.read_text())]
    assert found == [], "\n".join(found)


def test_the_lock_check_catches_a_method_that_lost_its_decorator():
    locked = "class S:\n    @locked\n    def f(self):\n        return self.vault.catalog.item(1)\n"
    blocked = "class S:\n    def f(self):\n        with self.vault.serialized():\n            self.vault.catalog.x()\n"
    lost = "class S:\n    def f(self):\n        return self.vault.catalog.item(1)\n"
    assert catalog_reads_outside_the_lock(locked) == []
    assert catalog_reads_outside_the_lock(blocked) == []
    assert catalog_reads_outside_the_lock(lost) == ["S.f reads the catalog unlocked at lines [3]"]
