"""dvc.yaml is a contract: each stage lists all the code it runs and all the params it reads, and the
package has no import cycles. Read from the source with `ast` (nothing is imported), so a module
that a stage imports only inside a function counts too."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_config
from dcgan import config
from dcgan.config import WEIGHTS_PARAMS, Config
from dcgan.distributed import World
from dcgan.models import model_spec
from dcgan.train import run_identity

SRC = ROOT / "src"
PACKAGE = "dcgan"
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]

# Config's derived values and the params each is made of.
PROPERTIES = {"nc": {"dataset", "channels"}, "mirror": {"dataset", "data_mirror"},
              "lr_d_effective": {"lr_d", "lr"}, "lr_g_effective": {"lr_g", "lr"}}
FIELDS = set(Config.model_fields)


def module_file(name: str) -> Path | None:
    """src/dcgan/a/b.py or src/dcgan/a/b/__init__.py for `dcgan.a.b`, if it is a module of the package."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The package's modules that `path` imports, anywhere in it (top level or inside a function):
    `from dcgan.x import y` names dcgan.x.y where y is a module, else dcgan.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if module_file(submodule) else node.module)
    assert all(module_file(name) for name in found), f"{path} imports a module that is not in src/: {found}"
    return found


def with_parent_packages(name: str) -> set[str]:
    """Importing dcgan.a.b runs dcgan/__init__.py and dcgan/a/__init__.py first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_closure(script: Path) -> set[str]:
    """Every module of the package that running `script` imports, transitively."""
    todo = {parent for name in imported_modules(script) for parent in with_parent_packages(name)}
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= {parent for found in imported_modules(module_file(name)) for parent in with_parent_packages(found)} - seen
    return seen


def stage_script(stage: dict) -> Path:
    scripts = re.findall(r"stages/\w+\.py", stage["cmd"])
    assert len(scripts) == 1, f"one stage script per cmd: {stage['cmd']}"
    return ROOT / scripts[0]


def code_deps(stage: dict) -> set[str]:
    """The code a stage lists: each module it names, and each module of each folder it names (a folder is
    listed where the stage runs all of it; DVC hashes its sources, .dvcignore leaves out __pycache__/)."""
    listed = set()
    for dep in stage.get("deps", []):
        if not dep.startswith(("src/", "stages/")):
            continue
        path = ROOT / dep
        listed |= {str(module.relative_to(ROOT)) for module in path.rglob("*.py")} if path.is_dir() else {dep}
    return listed


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_depends_on_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    script = stage_script(stage)
    runs = {str(module_file(module).relative_to(ROOT)) for module in import_closure(script)}
    runs.add(str(script.relative_to(ROOT)))
    listed = code_deps(stage)
    missing, unused = sorted(runs - listed), sorted(listed - runs)
    assert not missing, f"stage {name!r} runs {', '.join(missing)} but dvc.yaml does not list it in its deps"
    assert not unused, f"stage {name!r} lists {', '.join(unused)} in dvc.yaml, but its script never imports it"


def params_read(path: Path) -> set[str]:
    """The params a module reads: `cfg.<key>` and `self.cfg.<key>` (a derived value counts as the params
    it is made of), and every key of a module-level list of params that it reads with getattr(cfg, ...).
    `cfg.flat()` and `cfg.model_dump()` do not count: they copy all params into MLflow's record."""
    tree = ast.parse(path.read_text())
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_cfg(node.value):
            if node.attr in FIELDS:
                read.add(node.attr)
            read |= PROPERTIES.get(node.attr, set())
    uses_getattr = any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                       and node.args and is_cfg(node.args[0]) for node in ast.walk(tree))
    if uses_getattr:
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        read |= {key for list_name, keys in param_lists().items() if list_name in names for key in keys}
    return read


def is_cfg(node: ast.AST) -> bool:
    """The params are `cfg` everywhere in the package (a function's argument, or `self.cfg`)."""
    return (isinstance(node, ast.Name) and node.id == "cfg") or (
        isinstance(node, ast.Attribute) and node.attr == "cfg" and isinstance(node.value, ast.Name))


def param_lists() -> dict[str, tuple[str, ...]]:
    """Module-level tuples of param names: written out (config.WEIGHTS_PARAMS, switches.SWITCHES), or
    made from others in dcgan.config (config.CONFIG_PARAMS), whose values are read from the module."""
    found = {name: value for name, value in vars(config).items()
             if isinstance(value, tuple) and value and all(isinstance(key, str) and key in FIELDS for key in value)}
    for path in (SRC / PACKAGE).rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and node.value.elts and all(
                    isinstance(e, ast.Constant) and e.value in FIELDS for e in node.value.elts):
                found[node.targets[0].id] = tuple(e.value for e in node.value.elts)
    return found


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_lists_exactly_the_params_its_code_reads(name):
    stage = STAGES[name]
    script = stage_script(stage)
    files = [script] + [module_file(module) for module in import_closure(script) if module != "dcgan.config"]
    read = set().union(*(params_read(path) for path in files))
    listed = set(stage.get("params", []))
    assert not read - listed, f"stage {name!r} reads {', '.join(sorted(read - listed))} but dvc.yaml does not list it"
    assert not listed - read, f"stage {name!r} lists {', '.join(sorted(listed - read))} in dvc.yaml but never reads it"


def test_the_params_that_shape_the_weights_are_the_train_stages_and_a_runs_identity(work_folder):
    assert set(WEIGHTS_PARAMS) <= FIELDS
    assert set(WEIGHTS_PARAMS) <= set(STAGES["train"]["params"])
    cfg = make_config()
    assert set(run_identity(cfg, World())) == {*WEIGHTS_PARAMS, "processes", "train_data_sha256"}
    # What a checkpoint's shapes must match is a part of it (nc comes from dataset and channels).
    assert set(model_spec(cfg)) - {"nc"} <= set(WEIGHTS_PARAMS)


def test_the_package_has_no_import_cycles():
    graph = {module_name(path): imported_modules(path) for path in (SRC / PACKAGE).rglob("*.py")}
    cycles, state = [], {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for found in sorted(graph[name]):
            if state.get(found) == "open":
                cycles.append(" -> ".join(trail[trail.index(found):] + [found]))
            elif found not in state:
                visit(found, trail + [found])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles in the package:\n" + "\n".join(cycles)


def test_no_stage_script_shadows_a_standard_library_module():
    """`python stages/<name>.py` puts stages/ first on sys.path: a stage named like a stdlib module
    (stages/select.py) is what every `import select` in that process gets, wherever the interpreter
    does not build the module in (pyenv's, Ubuntu's; Debian's does)."""
    import sys

    shadowing = [name for name in STAGES if stage_script(STAGES[name]).stem in sys.stdlib_module_names]
    assert not shadowing, f"rename these stages and their scripts: {shadowing}"
