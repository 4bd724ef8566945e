"""harness.load.files: TOML and Python spec files -> Specs, and a located SpecError for each bad
one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from words import CHECK_NAMES, DOCS

from harness import Spec, SpecError, load_specs
from harness.load.files import Broken, load_file
from harness.load.toml_spec import SPEC_KEYS
from harness.spec import Input

KEYS = ", ".join(SPEC_KEYS)
INPUT_KEYS = "shape, low, high, requires_grad, kinks, unique, dtype, count"

SQUARE = """
[square]
forward = "x ** 2"
backward.x = "grad * 2 * x"
inputs.x = { shape = ["n"] }
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Messages show paths relative to the working folder: work in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def entries(write, name: str, text: str | bytes) -> list[Spec | Broken]:
    return load_file(write(Path.cwd() / name, text))


def broken_messages(write, name: str, text: str | bytes) -> list[str]:
    found = entries(write, name, text)
    assert all(isinstance(entry, Broken) for entry in found), found
    return [str(entry.error) for entry in found]


def only_error(write, name: str, text: str | bytes) -> str:
    (message,) = broken_messages(write, name, text)
    return message


# ------------------------------------------------------------------------------ good TOML files


def test_load_specs_of_a_toml_file(write, tmp_path):
    write(tmp_path / "a.toml", SQUARE + """
        [cube]
        doc = "x cubed"
        forward = "x ** 3"
        inputs.x = { shape = [] }
        """)
    square, cube = load_specs(tmp_path / "a.toml")
    assert (square.name, square.path, square.line) == ("square", "a.toml", 1)
    assert (cube.name, cube.path, cube.line) == ("cube", "a.toml", 6)
    assert square.location == "a.toml:1"
    assert sorted(square.backward) == ["x"] and square.backward["x"].names == ("grad", "x")
    assert cube.doc == "x cubed" and cube.inputs == {"x": Input(())}
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(square.forward({"x": x, "n": 2}), x**2)


def test_every_toml_key_of_the_design(write, tmp_path):
    write(tmp_path / "all.toml", """
        [weighted]
        doc = "all keys"
        forward = "sum(x ** 2 * w)"
        backward.x = "grad * 2 * x * w"
        jvp = "sum(2 * x * w * x_t)"
        reference = "sum(x * x * w)"
        inputs.x = { shape = ["n"], low = -2.0, high = 2.0, requires_grad = true, kinks = [0.5], unique = true }
        inputs.w = { shape = ["n"], low = 0.5, high = 1, requires_grad = false }
        dims = { n = [1, 5] }
        checks = ["analytic", "reference", "taylor"]
        dtypes = ["float64"]
        tolerances = { float64 = { rtol = 1e-6, atol = 1e-8 } }
        twice_differentiable = true
        benchmark = { n = 1024 }
        nondet_tol = 0.0
        [[weighted.examples]]
        x = [1.0, -1.0]
        w = [1.0, 0.5]
        expected = { x = [2.0, -1.0] }
        rtol = 1e-6
        atol = 1e-9
        [[weighted.examples]]
        x = [0.25]
        w = [1.0]
        """)  # noqa: E501
    (spec,) = load_specs(tmp_path / "all.toml")
    assert spec.name == "weighted" and spec.doc == "all keys"
    assert spec.forward.names == ("w", "x")
    assert spec.backward["x"].names == ("grad", "w", "x")
    assert spec.jvp.names == ("w", "x", "x_t")
    assert spec.reference.names == ("w", "x")
    assert spec.inputs == {
        "x": Input(("n",), low=-2.0, high=2.0, kinks=(0.5,), unique=True),
        "w": Input(("n",), low=0.5, high=1.0, requires_grad=False),
    }
    assert spec.dims == {"n": (1, 5)}
    assert spec.checks == ("analytic", "reference", "taylor")
    assert spec.dtypes == ("float64",)
    assert spec.tolerances == {"float64": {"rtol": 1e-6, "atol": 1e-8}}
    assert spec.twice_differentiable is True
    assert spec.benchmark == {"n": 1024}
    assert spec.nondet_tol == 0.0
    first, second = spec.examples
    assert first.dims == {"n": 2} and first.values["x"].tolist() == [1.0, -1.0]
    assert first.expected["x"].tolist() == [2.0, -1.0]
    assert (first.rtol, first.atol, first.index) == (1e-6, 1e-9, 0)
    assert second.dims == {"n": 1} and second.expected == {} and second.index == 1


def test_subtables_and_top_level_dotted_keys(write, tmp_path):
    write(tmp_path / "forms.toml", """
        dotted.forward = "x * 2"
        dotted.inputs.x = { shape = [] }

        [tables]
        forward = "x * y"

        [tables.inputs.x]
        shape = ["n"]

        [tables.inputs.y]
        shape = ["n"]
        requires_grad = false

        [tables.backward]
        x = "grad * y"

        ["v1.2"]
        forward = "x"
        inputs.x = {}
        """)
    dotted, tables, quoted = load_specs(tmp_path / "forms.toml")
    assert (dotted.name, dotted.line) == ("dotted", 1)
    assert (tables.name, tables.line) == ("tables", 4)
    assert tables.differentiable == ("x",) and list(tables.backward) == ["x"]
    assert (quoted.name, quoted.line) == ("v1.2", 17)
    assert quoted.inputs == {"x": Input(())}


def test_empty_and_comment_only_files_hold_no_specs(write, tmp_path):
    write(tmp_path / "empty.toml", "")
    write(tmp_path / "comments.toml", "# nothing here yet\n")
    assert load_specs(tmp_path) == []


# ---------------------------------------------------------------------------- good Python files


def test_load_specs_of_a_python_file(write, tmp_path):
    write(tmp_path / "mod.py", """
        import torch

        from harness import Input, Spec

        double = Spec(forward=lambda x: x * 2, inputs={"x": Input(["n"])})
        alias = double
        named = Spec(
            forward=lambda x: x * 3,
            inputs={"x": Input(["n"])},
            name="triple",
        )
        NOT_A_SPEC = Input(["n"])
        module = Spec.from_module(
            torch.nn.Linear(2, 1), inputs={"x": Input(["n", 2], requires_grad=False)}
        )
        """)
    double, triple, module = load_specs(tmp_path / "mod.py")
    assert (double.name, double.path, double.line) == ("double", "mod.py", 5)
    assert (triple.name, triple.path, triple.line) == ("triple", "mod.py", 7)
    assert (module.name, module.path, module.line) == ("module", "mod.py", 13)
    assert module.differentiable == ("weight", "bias")


def test_load_specs_of_a_folder(write, tmp_path):
    write(tmp_path / "specs" / "b.toml", SQUARE)
    write(tmp_path / "specs" / "a.py", """
        from harness import Input, Spec

        first = Spec(forward=lambda x: x, inputs={"x": Input()})
        """)
    write(tmp_path / "specs" / "nested" / "c.toml", SQUARE.replace("square", "nested"))
    write(tmp_path / "specs" / "_private.toml", "this is not read")
    write(tmp_path / "specs" / ".hidden.toml", "this is not read")
    write(tmp_path / "specs" / "notes.txt", "this is not read")
    specs = load_specs(tmp_path / "specs")
    assert [(spec.path, spec.name) for spec in specs] == [
        (os.path.join("specs", "a.py"), "first"),
        (os.path.join("specs", "b.toml"), "square"),
        (os.path.join("specs", "nested", "c.toml"), "nested"),
    ]
    assert [spec.name for spec in load_specs("specs")] == ["first", "square", "nested"]


def test_paths_outside_the_working_folder_are_shown_whole(write, tmp_path, monkeypatch):
    write(tmp_path / "specs" / "a.toml", SQUARE)
    monkeypatch.chdir(tmp_path.parent.parent)
    (spec,) = load_specs(tmp_path / "specs" / "a.toml")
    assert spec.path in (str(tmp_path / "specs" / "a.toml"),
                         os.path.relpath(tmp_path / "specs" / "a.toml"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.toml", "path='missing.toml' does not exist — give a spec file or a folder"),
        ("notes.txt", "path='notes.txt' is not a .toml or .py spec file"),
    ],
)
def test_load_specs_rejects_paths(write, tmp_path, name, message):
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(SpecError) as info:
        load_specs(name)
    assert str(info.value) == message


# -------------------------------------------------------------------------------- bad TOML files


def test_unknown_key_suggests_the_closest(write):
    assert only_error(write, "a.toml", """
        [square]
        forward = "x ** 2"
        fowrard = "x"
        inputs.x = { shape = ["n"] }
        """) == (
        f"a.toml:3: spec 'square': unknown key 'fowrard' (did you mean 'forward'?) — the keys "
        f"of a spec are {KEYS}"
    )


def test_unknown_key_without_a_close_one(write):
    assert only_error(write, "a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        colour = "red"
        """) == f"a.toml:4: spec 'square': unknown key 'colour' — the keys of a spec are {KEYS}"


def test_unknown_input_key_suggests_the_closest(write):
    assert only_error(write, "a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], hihg = 3 }
        """) == (
        f"a.toml:3: spec 'square': inputs.x has unknown key 'hihg' (did you mean 'high'?) — "
        f"the keys of an input are {INPUT_KEYS}"
    )


def test_missing_forward(write):
    assert only_error(write, "a.toml", """
        # a comment first
        [square]
        backward.x = "grad * 2 * x"
        inputs.x = { shape = ["n"] }
        """) == (
        "a.toml:2: spec 'square': has no forward — add forward = \"<formula of the inputs>\""
    )


def test_missing_inputs(write):
    assert only_error(write, "a.toml", """
        [square]
        forward = "2"
        """) == (
        "a.toml:1: spec 'square': has no inputs — declare each one, e.g. "
        'inputs.x = { shape = ["n"] }'
    )


def test_unknown_function_suggests_the_closest(write):
    assert only_error(write, "a.toml", """
        [square]
        forward = "x ** 2"
        backward.x = "grad * 2 * sinn(x)"
        inputs.x = { shape = ["n"] }
        """) == (
        "a.toml:3: spec 'square': backward.x = \"grad * 2 * sinn(x)\": unknown function 'sinn' — "
        f"did you mean 'sin'? {DOCS}"
    )


def test_unknown_name_suggests_the_closest(write):
    assert only_error(write, "a.toml", """
        [square]
        inputs.x = { shape = ["n"] }
        forward = "xx ** 2"
        """) == (
        "a.toml:3: spec 'square': forward = \"xx ** 2\": unknown name 'xx' — the formula can use "
        "x, n (did you mean 'x'?)"
    )


def test_spec_that_is_not_a_table(write):
    found = entries(write, "a.toml", """
        square = 3
        [cube]
        forward = "x ** 3"
        inputs.x = { shape = [] }
        """)
    broken, cube = found
    assert str(broken.error) == (
        "a.toml:1: spec 'square': square = 3 is not a table — write [square] and the spec's "
        "keys under it"
    )
    assert isinstance(cube, Spec) and (cube.name, cube.line) == ("cube", 2)


def test_toml_syntax_error_leaves_the_other_specs_loadable(write):
    found = entries(write, "a.toml", """
        [first]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }

        [bad]
        forward = "x ** 2
        inputs.x = { shape = ["n"] }

        [last]
        forward = "x ** 3"
        inputs.x = { shape = [] }
        """)
    first, bad, last = found
    assert (first.name, first.line) == ("first", 1)
    assert (last.name, last.line) == ("last", 9)
    assert isinstance(bad, Broken) and bad.name == "bad" and bad.line == 6
    assert str(bad.error) == (
        "a.toml:6: spec 'bad': TOML syntax error: Illegal character '\\n' (at line 6, column 18) "
        "— fix the syntax; the other specs still load"
    )
    with pytest.raises(SpecError) as info:
        load_specs("a.toml")
    assert str(info.value) == str(bad.error)


def test_toml_duplicate_key_breaks_only_its_spec(write):
    found = entries(write, "a.toml", """
        [a]
        forward = "x ** 2"
        forward = "x ** 3"
        inputs.x = { shape = ["n"] }

        [b]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        """)
    a, b = found
    assert str(a.error) == (
        "a.toml:3: spec 'a': TOML syntax error: Cannot overwrite a value (at line 3, column 19) "
        "— fix the syntax; the other specs still load"
    )
    assert isinstance(b, Spec) and b.line == 6


def test_toml_syntax_error_before_the_first_spec(write):
    garbage, spec = entries(write, "a.toml", "this is not toml\n" + SQUARE.lstrip("\n"))
    assert str(garbage.error) == (
        "a.toml:1: spec 'a': TOML syntax error: Expected '=' after a key in a key/value pair (at "
        "line 1, column 6) — fix the syntax; the other specs still load"
    )
    assert isinstance(spec, Spec) and (spec.name, spec.line) == ("square", 2)


def test_file_that_is_not_utf8(write):
    assert only_error(write, "a.toml", b'[a]\nforward = "x\xff"\n') == (
        "a.toml:1: spec 'a': the file is not UTF-8 text (invalid start byte at byte 16) — save "
        "it as UTF-8"
    )


def test_binary_file(write):
    message = only_error(write, "blob.toml", bytes(range(256)))
    assert message.startswith("blob.toml:1: spec 'blob': the file is not UTF-8 text (")


def test_huge_integer_in_an_example(write):
    message = only_error(write, "a.toml", f"""
        [a]
        forward = "x"
        inputs.x = {{ shape = [] }}
        [[a.examples]]
        x = {10**400}
        """)
    assert message.startswith("a.toml:4: spec 'a': examples[0].x=")


# ------------------------------------------------------------------ line numbers of offending keys


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = [-1] }
            """, 3, "size -1 in shape=[-1]", id="inputs-dotted"),
        pytest.param("""
            [a]
            doc = "first line"
            forward = "x ** 2"

            inputs.x = { shape = ["n"] }
            dims = { n = [5, 2] }
            """, 6, "dims.n=[5, 2]", id="dims"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n"] }
            backward.x = "grad * 2 * x"
            backward.y = "grad"
            """, 5, "backward names 'y'", id="backward-second"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n"] }
            checks = ["analytc"]
            dtypes = ["float64"]
            """, 4, "unknown check 'analytc'", id="checks"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n"] }
            dtypes = ["float23"]
            """, 4, "unknown dtype 'float23'", id="dtypes"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n"] }
            tolerances = { float32 = { rtol = -1.0 } }
            """, 4, "tolerances.float32.rtol=-1.0", id="tolerances"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = [] }
            twice_differentiable = 1
            """, 4, "twice_differentiable=1", id="twice"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n"] }
            benchmark = { m = 3 }
            """, 4, "benchmark names dim 'm'", id="benchmark"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = [] }
            jvp = "2 * x * y_t"
            """, 4, 'jvp = "2 * x * y_t": unknown name \'y_t\'', id="jvp"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = [] }
            reference = "x * grad"
            """, 4, "reference = \"x * grad\": unknown name 'grad'", id="reference"),
        pytest.param("""
            [a]
            forward = "x * y"
            inputs.x = { shape = ["n"] }
            inputs.y = { shape = ["n"] }
            [[a.examples]]
            x = [1.0]
            """, 5, "examples[0] gives no value for 'y'", id="examples"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            inputs.x = { shape = ["n", "m"] }
            dims = { n = [1, 2000], m = [1, 1000] }
            """, 3, "input 'x' can reach 2,000,000 elements", id="memory"),
        pytest.param("""
            [a]
            forward = "x ** 2"
            [a.backward]
            x = "grad * 2 * coss(x)"
            [a.inputs]
            x = { shape = ["n"] }
            """, 3, "backward.x = \"grad * 2 * coss(x)\": unknown function 'coss'",
            id="backward-subtable"),
    ],
)
def test_line_of_the_offending_key(write, text, line, what):
    message = only_error(write, "a.toml", text)
    assert message.startswith(f"a.toml:{line}: spec 'a': {what}")


def test_line_of_a_key_stays_inside_its_spec(write):
    broken, other = entries(write, "a.toml", """
        [a]
        forward = "x ** 2"
        [a.inputs]
        x = { shape = [-1] }

        [b]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        """)
    assert isinstance(other, Spec)
    assert broken.line == 3, str(broken.error)


def test_line_of_the_offending_example(write):
    message = only_error(write, "a.toml", """
        [a]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        [[a.examples]]
        x = [1.0]
        [[a.examples]]
        x = [1.0]
        expected = { y = [1.0] }
        """)
    assert message == (
        "a.toml:6: spec 'a': examples[1].expected names 'y', which is not an input with a "
        "gradient — those are x"
    )


def test_line_of_a_quoted_unknown_key(write):
    message = only_error(write, "a.toml", """
        [a]
        forward = "x"
        inputs.x = { shape = [] }
        "fowrard" = "x"
        """)
    assert message.startswith("a.toml:4: spec 'a': unknown key 'fowrard'")


def test_line_numbers_count_only_toml_newlines(write):
    first, second = entries(write, "a.toml", """
        [a]
        doc = "a line\u2028separator and a\x85next line, raw in the string"
        forward = "x"
        inputs.x = { shape = [] }

        [b]
        forward = "x"
        inputs.x = { shape = [] }
        checks = ["nope"]
        """)
    assert isinstance(first, Spec) and first.line == 1
    assert second.line == 9, str(second.error)


TWO_SPECS = """
[a]
forward = "x"
inputs.x = { shape = [] }

[b]
forward = "x"
inputs.x = { shape = [] }
checks = ["nope"]
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_crlf_files_load_like_lf_files(write, newline):
    a, b = entries(write, "a.toml", TWO_SPECS.lstrip("\n").replace("\n", newline).encode())
    assert isinstance(a, Spec) and a.line == 1
    assert b.line == 8


def test_utf8_bom_is_ignored(write):
    found = entries(write, "a.toml", b"\xef\xbb\xbf" + TWO_SPECS.lstrip("\n").encode())
    assert [entry.name for entry in found] == ["a", "b"]
    a, b = found
    assert isinstance(a, Spec) and a.line == 1
    assert b.line == 8


def test_header_like_line_inside_a_multiline_string(write):
    (a,) = entries(write, "a.toml", """
        [a]
        doc = \"\"\"
        [b]
        forward = "this is doc text"
        \"\"\"
        forward = "x"
        inputs.x = { shape = [] }
        checks = ["nope"]
        """)
    assert a.line == 8, str(a.error)


def test_syntax_error_after_a_header_like_line_inside_a_multiline_string(write):
    found = entries(write, "a.toml", """
        [a]
        doc = \"\"\"
        [b]
        \"\"\"
        forward = "x
        inputs.x = { shape = [] }

        [c]
        forward = "x"
        inputs.x = { shape = [] }
        """)
    assert [entry.name for entry in found] == ["a", "c"]
    assert found[0].line == 5, str(found[0].error)
    assert isinstance(found[1], Spec)


# ------------------------------------------------------------------------- a TOML file is data

ESCAPES = [
    pytest.param('__import__("os").system("touch marker")', "'__import__' is not allowed",
                 id="import-system"),
    pytest.param('open("marker", "w")', "unknown function 'open'", id="open"),
    pytest.param('exec("open(\'marker\', \'w\')")', "unknown function 'exec'", id="exec"),
    pytest.param("x.__class__", "'__class__' is not allowed", id="dunder"),
    pytest.param('torch.save(x, "marker")', "torch.save is not allowed", id="torch-save"),
]


@pytest.mark.parametrize("key", ["forward", "backward.x", "reference"])
@pytest.mark.parametrize(("formula", "phrase"), ESCAPES)
def test_loading_toml_never_runs_code(write, tmp_path, key, formula, phrase):
    forward = "" if key == "forward" else 'forward = "x * 2"\n'
    path = write(tmp_path / "evil.toml",
                 f"[evil]\n{forward}{key} = '''{formula}'''\ninputs.x = {{ shape = [] }}\n")
    (broken,) = load_file(path)
    assert isinstance(broken, Broken)
    line = 2 if key == "forward" else 3
    prefix = f"evil.toml:{line}: spec 'evil': {key} = "
    assert str(broken.error).startswith(prefix)
    assert phrase in str(broken.error)
    with pytest.raises(SpecError):
        load_specs(path)
    assert not (tmp_path / "marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.toml"]


# ----------------------------------------------------------------------------- bad Python files


def test_python_module_that_fails_to_import(write):
    assert only_error(write, "mod.py", """
        import torch

        x = 1
        raise RuntimeError("boom")
        """) == (
        "mod.py:4: spec 'mod': the file failed to import: RuntimeError: boom — fix the module; "
        "the other spec files still load"
    )


def test_python_module_failing_inside_a_function_gives_the_module_line(write):
    assert only_error(write, "mod.py", """
        def helper():
            return {}["missing"]


        value = helper()
        """) == (
        "mod.py:2: spec 'mod': the file failed to import: KeyError: 'missing' — fix the module; "
        "the other spec files still load"
    )


def test_python_module_with_a_syntax_error(write):
    assert only_error(write, "mod.py", """
        import torch
        x = (
        """) == (
        "mod.py:2: spec 'mod': the file failed to import: SyntaxError: '(' was never closed "
        "(mod.py, line 2) — fix the module; the other spec files still load"
    )


def test_python_module_that_fails_to_import_is_not_left_in_sys_modules(write):
    before = set(sys.modules)
    entries(write, "mod.py", "raise ImportError('no such thing')\n")
    assert not [name for name in set(sys.modules) - before if "mod" in name]


def test_python_module_building_an_invalid_spec(write):
    ok, bad, after = entries(write, "mod.py", """
        from harness import Input, Spec

        ok = Spec(forward=lambda x: x * 2, inputs={"x": Input(["n"])})
        bad = Spec(
            forward=lambda x: x,
            inputs={"x": Input(["n"])},
            checks=["analytc"],
        )
        after = Spec(forward=lambda x: x * 3, inputs={"x": Input(["n"])})
        """)
    assert isinstance(ok, Spec) and isinstance(after, Spec), (ok, after)
    assert (ok.name, after.name) == ("ok", "after")
    assert isinstance(bad, Broken) and bad.name == "bad"
    assert str(bad.error) == (
        f"mod.py:4: spec 'bad': unknown check 'analytc' (did you mean 'analytic'?) — the checks "
        f"are {CHECK_NAMES}"
    )


def test_load_specs_raises_the_first_invalid_spec_of_a_module(write, tmp_path):
    write(tmp_path / "mod.py", """
        from harness import Input, Spec

        ok = Spec(forward=lambda x: x * 2, inputs={"x": Input(["n"])})
        bad = Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, dtypes=["float23"])
        """)
    with pytest.raises(SpecError, match=r"^mod.py:4: spec 'bad': unknown dtype 'float23'"):
        load_specs(tmp_path / "mod.py")


def test_invalid_spec_outside_the_loader_still_raises():
    with pytest.raises(SpecError, match="unknown check 'analytc'"):
        Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, checks=["analytc"])
    with pytest.raises(SpecError, match=r"^size -1 in shape=\[-1\]"):
        Input([-1])


def test_invalid_specs_a_module_does_not_keep_are_reported(write):
    found = entries(write, "mod.py", """
        from harness import Input, Spec

        unused = Input(low=2.0, high=1.0)
        SPECS = [Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, dims={"n": [3, 1]})]
        good = Spec(forward=lambda x: x, inputs={"x": Input(["n"])})
        """)
    assert [entry.name for entry in found] == ["good", "mod-line3", "mod-line4"]
    assert [str(entry.error) for entry in found[1:]] == [
        "mod.py:3: spec 'mod': Input(...) is invalid: low=2.0 must be below high=1.0 — swap "
        "them or widen the range",
        "mod.py:4: spec 'mod-line4': dims.n=[3, 1] is not a range 0 <= min <= max — write "
        "e.g. n = [1, 3]",
    ]


def test_module_failing_after_an_invalid_spec_reports_both(write):
    found = entries(write, "mod.py", """
        from harness import Input, Spec

        bad = Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, checks=["analytc"])
        examples = bad.examples  # never set on an invalid spec
        """)
    assert [entry.name for entry in found] == ["bad", "mod"]
    assert all(isinstance(entry, Broken) for entry in found)
    assert str(found[0].error).startswith("mod.py:3: spec 'bad': unknown check 'analytc'")
    assert str(found[1].error).startswith(
        "mod.py:4: spec 'mod': the file failed to import: AttributeError:")


def test_python_module_building_an_invalid_named_spec(write):
    assert only_error(write, "mod.py", """
        from harness import Input, Spec

        bad = Spec(forward=lambda x, y: x, inputs={"x": Input(["n"])}, name="named")
        """) == (
        "mod.py:3: spec 'named': forward takes parameter 'y', which is none of x, n — rename it "
        "or give it a default"
    )


def test_python_module_building_an_invalid_input(write):
    assert only_error(write, "mod.py", """
        from harness import Input, Spec

        bad = Spec(
            forward=lambda x: x,
            inputs={"x": Input([-1])},
        )
        """) == (
        "mod.py:5: spec 'bad': size -1 in shape=[-1] is not a non-negative integer or a dim "
        "name — write e.g. 3 or 'n'"
    )


def test_python_module_with_an_invalid_spec_from_a_helper_module(write, tmp_path, monkeypatch):
    write(tmp_path / "helpers" / "shared.py", """
        from harness import Input, Spec


        def make(**options):
            return Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, **options)
        """)
    monkeypatch.syspath_prepend(str(tmp_path / "helpers"))
    monkeypatch.delitem(sys.modules, "shared", raising=False)
    message = only_error(write, "mod.py", """
        from shared import make

        bad = make(dtypes=["float23"])
        """)
    assert message == (
        "mod.py:3: spec 'bad': unknown dtype 'float23' (did you mean 'float32'?) — the dtypes "
        "are float64, float32, float16, bfloat16, complex128, complex64"
    )
