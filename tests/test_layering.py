"""The package layering DESIGN.md describes, checked on the imports themselves (issue 16,
item 8): lower layers never import higher ones, and no two command modules import each other."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# package → packages it must not import (anywhere in its files, lazily imported or not)
FORBIDDEN = {
    "kbert/models": ("kbert.tasks", "kbert.export", "kbert.distillation", "export", "trainers"),
    "kbert/layers": ("kbert.models", "kbert.tasks", "kbert.export", "kbert.distillation"),
    "kbert/distillation": ("kbert.export", "export", "trainers"),
    "kbert/tasks": ("kbert.export", "kbert.distillation", "export", "trainers"),
}


def imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def python_files(package):
    for directory, _, names in os.walk(os.path.join(ROOT, package)):
        yield from (os.path.join(directory, n) for n in sorted(names) if n.endswith(".py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package):
    bad = [f"{os.path.relpath(path, ROOT)} imports {module}"
           for path in python_files(package) for module in imported_modules(path)
           if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package])]
    assert not bad, bad


def test_command_modules_do_not_import_each_other_both_ways():
    edges = set()
    for package in ("export", "trainers"):
        for path in python_files(package):
            name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            for module in imported_modules(path):
                if module.startswith(("export.", "trainers.")):
                    edges.add((name, module))
    mutual = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert not mutual, mutual


def test_the_checker_sees_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from kbert.tasks.base import TaskModel\n")
    assert "kbert.tasks.base" in set(imported_modules(str(probe)))
