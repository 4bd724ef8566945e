"""Fuzzing the loader: whatever a TOML spec file holds, loading it never crashes.

Hypothesis writes documents from the real keys plus junk, random values and random
formula strings, sometimes broken on purpose (cut short, a junk line, stray bytes).
``load_file`` must answer with Specs and Broken entries only, and ``load_specs`` may
raise SpecError but nothing else.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Spec, SpecError, load_specs
from harness.checks import CHECKS
from harness.load.files import Broken, load_file
from harness.load.toml_spec import INPUT_KEYS, SPEC_KEYS
from harness.load.whitelist import CONSTANTS, FUNCTIONS
from harness.registry import DTYPE_NAMES

FUZZ = settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = ["x", "y", "W", "b", "n", "N", "D", "grad", "result", "x_t", "torch", "_x", "__class__"]
DIM_NAMES = ["n", "m", "N", "D", "x", "1n", "_n"]
JUNK_KEYS = ["fowrard", "input", "backwards", "Forward", "kink", "dim", "", "a b", "é", "x.y"]

# ---------------------------------------------------------------------------- values and keys

# TOML integers are 64-bit; tomllib's leniency past that is tested in test_loader.py.
integers = st.integers(-(2**63), 2**63 - 1)
small_integers = st.integers(-3, 12)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan])
# Characters that str.splitlines() takes for line breaks and TOML does not (line numbers
# must not count them) are drawn on purpose, raw in strings and as stray bytes.
PYTHON_ONLY_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | st.text(
    st.sampled_from(PYTHON_ONLY_BREAKS + "ab\t"), max_size=4)
scalars = st.one_of(
    st.booleans(), small_integers, integers, floats, texts,
    st.dates(), st.datetimes(), st.times(),
)


def values(depth: int = 2) -> st.SearchStrategy:
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(NAMES + JUNK_KEYS) | texts, inner, max_size=3),
    )


def formula_tokens() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NAMES + list(CONSTANTS)),
        st.sampled_from(sorted(FUNCTIONS)).map(lambda f: f + "("),
        st.sampled_from(["+", "-", "*", "/", "**", "@", "(", ")", ",", "[", "]", ":", ".", "T",
                         ".mT", ".shape", "dim=0", "keepdim=True", "'ij,jk->ik'", " ", "==",
                         "lambda", "if", "else", "__import__('os')", "open('marker', 'w')",
                         "torch.", "sinn(", "\\", "\n"]),
        small_integers.map(str),
        floats.map(repr),
    )


formulas = st.one_of(
    st.lists(formula_tokens(), max_size=12).map("".join),
    st.sampled_from(["x ** 2", "grad * 2 * x", "sum(x * y)", "sin(x) * grad",
                     "mean((X @ W + b - Y) ** 2)", "grad * result", "x"]),
    texts,
)
shapes = st.lists(st.one_of(st.sampled_from(DIM_NAMES), small_integers, scalars), max_size=3)


@st.composite
def input_tables(draw) -> dict:
    fields = {
        "shape": shapes | values(1),
        "low": floats | scalars,
        "high": floats | scalars,
        "requires_grad": st.booleans() | scalars,
        "kinks": st.lists(floats | scalars, max_size=3) | scalars,
        "unique": st.booleans() | scalars,
        "dtype": st.sampled_from(["int64", "bool", "float32", "int3"]) | scalars,
        "count": st.lists(small_integers | scalars, max_size=3) | scalars,
    }
    keys = draw(st.lists(st.sampled_from([*INPUT_KEYS, "shpe", "hihg", "requires-grad"]),
                         max_size=5, unique=True))
    return {key: draw(fields.get(key, values(1))) for key in keys}


def spec_values() -> dict[str, st.SearchStrategy]:
    return {
        "doc": texts | scalars,
        "forward": formulas | scalars,
        "backward": st.dictionaries(st.sampled_from(NAMES + JUNK_KEYS), formulas | scalars,
                                    max_size=3) | scalars,
        "jvp": formulas,
        "reference": formulas,
        "inputs": st.dictionaries(st.sampled_from(NAMES + JUNK_KEYS), input_tables() | scalars,
                                  max_size=3) | scalars,
        "dims": st.dictionaries(st.sampled_from(DIM_NAMES + JUNK_KEYS),
                                st.lists(small_integers | scalars, max_size=3) | scalars,
                                max_size=3) | scalars,
        "checks": st.lists(st.sampled_from([*CHECKS, "analytc", "nope"]) | texts, max_size=3)
        | scalars,
        "dtypes": st.lists(st.sampled_from([*DTYPE_NAMES, "float23", "int64"]) | texts,
                           max_size=3) | scalars,
        "tolerances": st.dictionaries(
            st.sampled_from([*DTYPE_NAMES, "float23"]),
            st.dictionaries(st.sampled_from(["rtol", "atol", "rtl"]), floats | scalars,
                            max_size=2) | scalars, max_size=2) | scalars,
        "twice_differentiable": st.booleans() | scalars,
        "params": st.dictionaries(st.sampled_from(["dim", "eps", *NAMES, *JUNK_KEYS]),
                                  st.lists(small_integers | floats | texts, max_size=3)
                                  | scalars, max_size=2) | scalars,
        "examples": st.lists(
            st.dictionaries(st.sampled_from([*NAMES, "expected", "rtol", "atol", "expect"]),
                            values(2), max_size=4),
            max_size=2) | scalars,
        "benchmark": st.dictionaries(st.sampled_from(DIM_NAMES), small_integers | scalars,
                                     max_size=2) | scalars,
        "nondet_tol": floats | scalars,
        "nondifferentiable_outputs": st.lists(small_integers | scalars, max_size=3) | scalars,
    }


@st.composite
def spec_tables(draw) -> dict:
    fields = spec_values()
    keys = draw(st.lists(st.sampled_from([*SPEC_KEYS, *JUNK_KEYS]), max_size=8, unique=True))
    if draw(st.booleans()):  # most specs have the two keys that every spec needs
        keys = ["forward", "inputs", *[k for k in keys if k not in ("forward", "inputs")]]
    return {key: draw(fields.get(key, values(2))) for key in keys}


VALID = {
    "forward": "sum(x ** 2 * y)",
    "backward": {"x": "grad * 2 * x * y"},
    "inputs": {"x": {"shape": ["n"], "low": -2.0, "high": 2.0},
               "y": {"shape": ["n"], "requires_grad": False}},
    "dims": {"n": [1, 4]},
    "examples": [{"x": [1.0, 2.0], "y": [0.5, 1.0], "expected": {"x": [1.0, 4.0]}}],
}


@st.composite
def near_valid_tables(draw) -> dict:
    """A valid spec with one to three of its fields replaced by random ones: errors deep in."""
    table = json.loads(json.dumps(VALID))
    fields = spec_values()
    for key in draw(st.lists(st.sampled_from(SPEC_KEYS), min_size=1, max_size=3, unique=True)):
        where = draw(st.sampled_from(["replace", "inner"]))
        if where == "inner" and key == "inputs":
            table["inputs"]["x"] = draw(input_tables())
        elif where == "inner" and key == "examples":
            table["examples"][0][draw(st.sampled_from(["x", "y", "expected", "rtol", "z"]))] = \
                draw(values(2))
        elif where == "inner" and key == "backward":
            table["backward"][draw(st.sampled_from(NAMES))] = draw(formulas)
        else:
            table[key] = draw(fields[key])
    return table


@st.composite
def tops(draw):
    """What a top-level key holds: mostly a near-valid spec, sometimes anything."""
    kind = draw(st.sampled_from(["near-valid"] * 6 + ["random"] * 3 + ["scalar"]))
    return draw({"near-valid": near_valid_tables(), "random": spec_tables(),
                 "scalar": scalars}[kind])


documents = st.dictionaries(
    st.sampled_from(["square", "linear_mse", "a", "b-c", "quoted name", "é", "1"]) | texts,
    tops(),
    max_size=3,
)

# -------------------------------------------------------------------------------- TOML writing

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    return key if _BARE.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    # JSON escapes are TOML escapes; DEL must be escaped too in TOML.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) \
            + " }"
    raise TypeError(value)


def in_file_order(document: dict) -> list[str]:
    """Top-level keys as toml_document writes them: plain values before the tables."""
    return sorted(document, key=lambda name: isinstance(document[name], dict))


def toml_document(document: dict, examples_as_tables: bool) -> str:
    lines = []
    for name in in_file_order(document):
        table = document[name]
        if not isinstance(table, dict):
            lines.append(f"{toml_key(name)} = {toml_value(table)}")
            continue
        lines.append(f"[{toml_key(name)}]")
        tables = []
        for key, value in table.items():
            if (examples_as_tables and key == "examples" and isinstance(value, list)
                    and all(isinstance(v, dict) for v in value)):
                tables += value
                continue
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
        for example in tables:
            lines.append(f"[[{toml_key(name)}.examples]]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in example.items()]
        lines.append("")
    return "\n".join(lines)


@st.composite
def toml_files(draw) -> bytes:
    """A TOML document, valid or (a third of the time) damaged."""
    text = toml_document(draw(documents), examples_as_tables=draw(st.booleans()))
    data = text.encode("utf-8")
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "junk-line", "bytes"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "junk-line":
        lines = text.split("\n")
        at = draw(st.integers(0, len(lines)))
        junk = draw(st.sampled_from(["[", "[[x]]", "= 1", "x = ", "[a.b", '"', "x = [1,",
                                     "]]", "x.y.z = 1", "[square]", "forward = 'x'"]) | texts)
        data = "\n".join([*lines[:at], junk, *lines[at:]]).encode("utf-8", "surrogatepass")
    elif damage == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


# --------------------------------------------------------------------------------- properties


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as path:
        yield Path(path)


def check_entries(found: list, path: Path) -> None:
    assert isinstance(found, list)
    lines = max(1, path.read_bytes().count(b"\n") + 1)
    for entry in found:
        if isinstance(entry, Spec):
            assert isinstance(entry.name, str) and entry.line is not None
            assert 1 <= entry.line <= lines
            continue
        assert isinstance(entry, Broken), entry
        error = entry.error
        assert isinstance(error, SpecError)
        assert error.spec == entry.name
        assert error.line is None or 1 <= error.line <= lines, (error.line, lines, str(error))
        assert str(error).startswith(f"{error.path}:"), str(error)
        assert str(error).endswith(error.message)


@FUZZ
@given(data=toml_files())
def test_load_file_never_raises(folder, data):
    path = folder / "fuzz.toml"
    path.write_bytes(data)
    check_entries(load_file(path), path)


@FUZZ
@given(data=toml_files())
def test_load_specs_raises_only_spec_error(folder, data):
    path = folder / "fuzz.toml"
    path.write_bytes(data)
    try:
        specs = load_specs(path)
    except SpecError as error:
        assert str(error).startswith(f"{error.path}:")
    else:
        assert all(isinstance(spec, Spec) for spec in specs)


@FUZZ
@given(document=documents)
def test_valid_toml_loads_one_entry_per_top_level_key(folder, document):
    path = folder / "valid.toml"
    path.write_text(toml_document(document, examples_as_tables=False), encoding="utf-8")
    found = load_file(path)
    check_entries(found, path)
    assert [entry.name for entry in found] == in_file_order(document)
