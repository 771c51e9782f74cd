"""The shape the code keeps: one home per concept, checked on every run.

These read the source (the import graph, the syntax tree, the templates), not behaviour; each
guards a rule written in the README's layout section.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "portal"
TEMPLATES = ROOT / "templates"

BLUEPRINTS = ("auth", "dashboard", "security", "practice", "support", "health", "dev")
METHOD_KEYS = ("sms", "email", "totp")
# The registry is the one place that may name a method key; the model only states the schema.
REGISTRY = {PORTAL / "mfa" / "methods.py", PORTAL / "models" / "mfa.py"}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("portal")


def test_no_blueprint_package_imports_another(graph):
    """Does any blueprint package import another (directly or through a chain of modules)?"""
    problems = []
    for importer in BLUEPRINTS:
        for imported in BLUEPRINTS:
            if importer == imported:
                continue
            chains = graph.find_shortest_chains(importer=f"portal.{importer}", imported=f"portal.{imported}",
                                                as_packages=True)
            problems += [" -> ".join(chain) for chain in chains]
    assert problems == []


def test_the_import_graph_check_sees_a_cross_import(graph):
    """Would the check above notice one? (The graph does report the app factory's imports.)"""
    assert graph.find_shortest_chains(importer="portal", imported="portal.auth", as_packages=False) or \
        graph.direct_import_exists(importer="portal", imported="portal.auth", as_packages=True)


def _python_files():
    return sorted(p for p in PORTAL.rglob("*.py") if p not in REGISTRY)


def _compares_method_key(node: ast.AST) -> bool:
    if not isinstance(node, ast.Compare):
        return False
    operands = [node.left, *node.comparators]
    for operand in operands:
        if isinstance(operand, ast.Constant) and operand.value in METHOD_KEYS:
            return True
        if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) and any(
                isinstance(item, ast.Constant) and item.value in METHOD_KEYS for item in operand.elts):
            return True
    return False


def method_key_comparisons_in_python() -> list[str]:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if _compares_method_key(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


_KEYS = "|".join(METHOD_KEYS)
_TEMPLATE_COMPARISON = re.compile(
    r"""(==|!=|\bin)\s*\(?\s*["'](""" + _KEYS + r""")["']|["'](""" + _KEYS + r""")["']\s*(==|!=)""")
# A comparison in a tag that speaks of a method, device or channel (a column sorted by "email" is not one).
_ABOUT_METHODS = re.compile(r"method|device|channel")
_TEMPLATE_KEY_MAP = re.compile(r"""\{\s*["'](""" + _KEYS + r""")["']\s*:""")


def method_key_comparisons_in_templates() -> list[str]:
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")) + sorted(TEMPLATES.rglob("*.txt")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for tag in re.findall(r"\{[{%].*?[%}]\}", line):
                if _TEMPLATE_KEY_MAP.search(tag) or (_ABOUT_METHODS.search(tag) and _TEMPLATE_COMPARISON.search(tag)):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_no_method_key_is_compared_outside_the_registry():
    """Does any module or template decide by comparing "sms", "email" or "totp" itself?"""
    assert method_key_comparisons_in_python() == []
    assert method_key_comparisons_in_templates() == []


def test_the_method_key_check_finds_a_comparison(tmp_path):
    """Would the check above catch the forms it looks for?"""
    assert _compares_method_key(ast.parse('method == "totp"').body[0].value)
    assert _compares_method_key(ast.parse('device in ("sms", "email")').body[0].value)
    assert not _compares_method_key(ast.parse('channel == methods.SMS.key').body[0].value)
    assert _TEMPLATE_COMPARISON.search('{% if method != "totp" %}') and _ABOUT_METHODS.search("method")
    assert _TEMPLATE_KEY_MAP.search('{{ {"totp": "Authenticator Apps"}.get(method) }}')


def _routes_modules():
    return sorted(PORTAL.glob("*/routes.py"))


def _commits_or_audits(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("commit", "flush"):
                lines.append(node.lineno)
            if node.func.attr == "record" and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit":
                lines.append(node.lineno)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names]
            if (isinstance(node, ast.ImportFrom) and node.module == "portal" and "audit" in names) or \
                    "portal.audit" in names:
                lines.append(node.lineno)
    return lines


def test_routes_never_commit_or_write_audit_events():
    """Do views leave transactions and audit events to the services they call?"""
    found = {str(path.relative_to(ROOT)): _commits_or_audits(ast.parse(path.read_text()))
             for path in _routes_modules()}
    assert {path: lines for path, lines in found.items() if lines} == {}
    assert len(found) >= len(BLUEPRINTS)


def test_the_routes_check_finds_a_commit():
    """Would the check above catch a view that commits or audits?"""
    assert _commits_or_audits(ast.parse("db.session.commit()"))
    assert _commits_or_audits(ast.parse("from portal import audit\naudit.record('logout')"))
    assert not _commits_or_audits(ast.parse("signin.log_out(user)"))


def test_every_package_keeps_its_errors_in_errors_py_with_a_status():
    """Does each service package define its errors in errors.py, each with an HTTP status?"""
    import importlib
    import inspect

    for package in ("accounts", "delivery", "enforcement", "mfa"):
        module = importlib.import_module(f"portal.{package}.errors")
        errors = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, Exception) and obj.__module__ == module.__name__]
        assert errors, package
        assert all(isinstance(error.status, int) and 400 <= error.status < 600 for error in errors), package
    for path in PORTAL.rglob("*.py"):
        if path.name == "errors.py" or path.parent == PORTAL:
            continue
        tree = ast.parse(path.read_text())
        defined = [node.name for node in tree.body if isinstance(node, ast.ClassDef)
                   and any(isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception"))
                           for base in node.bases)]
        assert defined == [], f"{path.relative_to(ROOT)} defines {defined}"
