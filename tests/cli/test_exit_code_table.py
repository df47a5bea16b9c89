"""Each exit code is defined once, in ``store.ExitCode``: README's table equals it,
every error class of the product takes its code from it, and the error trees drawn
in the errors modules' docstrings state the codes the classes carry."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

from store import ExitCode

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("store", "sources", "mount", "cli")


def readme_table() -> list[tuple[int, str, str]]:
    """The rows of README's "Exit codes" table: (code, name, meaning)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Exit codes\n", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1].strip("`"), cells[2]))
    return rows


def product_modules() -> list[ModuleType]:
    modules = []
    for package_name in PRODUCT:
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if not info.name.endswith(".__main__"):  # would run the program
                modules.append(importlib.import_module(info.name))
    return modules


def test_the_readme_table_is_the_enum_row_for_row() -> None:
    expected = [(int(code), code.name, code.meaning) for code in ExitCode]
    assert readme_table() == expected


def test_the_readme_table_is_parsed_at_all() -> None:
    # Guards the parser: a table it could not read would make the test above
    # compare two empty lists only if the enum were empty too.
    rows = readme_table()
    assert (3, "PARTIAL", ExitCode.PARTIAL.meaning) in rows
    assert len({code for code, _, _ in rows}) == len(rows)


def test_every_error_class_of_the_product_takes_its_code_from_the_enum() -> None:
    checked = []
    for module in product_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or "exit_code" not in vars(cls):
                continue
            value = vars(cls)["exit_code"]
            if isinstance(value, property | type(None)) or inspect.isfunction(value):
                continue
            assert type(value) is ExitCode, (
                f"{module.__name__}.{cls.__name__}.exit_code = {value!r}: use store.ExitCode"
            )
            checked.append(cls)
    # The roots of the packages' error trees at least.
    names = {cls.__name__ for cls in checked}
    assert {"StoreError", "SourceError", "CliError", "MountError", "M365ConfigError"} <= names


def test_the_error_trees_in_the_docstrings_state_each_class_code() -> None:
    # Every package's errors module draws its tree with the codes: "Name (N)".
    modules = [m for m in product_modules() if m.__name__.rsplit(".", 1)[-1] == "errors"]
    assert {"store.errors", "sources.errors", "cli.errors", "mount.errors"} <= {
        m.__name__ for m in modules
    }
    assert len(modules) >= 5
    for module in modules:
        drawn = re.findall(r"(\w+) \((\d+)\)", module.__doc__ or "")
        assert drawn, module.__name__
        for name, number in drawn:
            cls = getattr(module, name)
            assert cls.exit_code == int(number), (module.__name__, name, cls.exit_code, number)


def _bare_exit_numbers(path: Path) -> list[str]:
    """Places in one source file that write an exit code as a bare number."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_commands = path.parent.name == "commands" and path.parent.parent.name == "cli"
    found = []

    def number(node: ast.AST | None) -> bool:
        return (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        )

    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and node.args and number(node.args[0]):
            name = ast.unparse(node.func)
            if name in ("sys.exit", "os._exit", "SystemExit", "exit", "ctx.exit"):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Assign | ast.AnnAssign) and number(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = ast.unparse(target)
                if name.rsplit(".", 1)[-1] == "exit_code" or name.upper().startswith("EXIT_"):
                    found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "exit_code" and number(value):
                    found.append(f"{where}: exit_code {ast.unparse(value)}")
        elif isinstance(node, ast.Return) and in_commands and number(node.value):
            found.append(f"{where}: {ast.unparse(node)}")
    return found


def test_no_exit_code_is_written_as_a_bare_number() -> None:
    sources = [path for top in PRODUCT for path in sorted((ROOT / top).rglob("*.py"))]
    assert len(sources) > 100
    bare = [line for path in sources for line in _bare_exit_numbers(path)]
    assert not bare, "use store.ExitCode:\n" + "\n".join(bare)
