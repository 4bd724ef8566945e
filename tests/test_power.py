"""harness.power: the planted error lands where it should, and power() reports what is caught."""

from __future__ import annotations

import torch

from harness import Input, Spec, verify
from harness.__main__ import main
from harness.power import ERRORS, plant, planted, power

TANH = Spec(forward=lambda x: torch.tanh(x) * 3, inputs={"x": Input((4,), low=-2.0, high=2.0)},
            name="tanh3")


def _gradient(output_fn, x, cotangent):
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(output_fn(x), x, cotangent)
    return grad


def test_one_scales_the_largest_output_elements_cotangent_only():
    x = torch.tensor([0.5, -4.0, 2.0, 1.0], dtype=torch.float64)
    v = torch.tensor([1.5, -1.25, 2.0, 1.75], dtype=torch.float64)
    true = _gradient(lambda x: x**3, x, v)
    wrong = _gradient(lambda x: plant(x**3, 1e-3, "one"), x, v)
    ratio = wrong / true
    assert torch.allclose(ratio, torch.tensor([1, 1 + 1e-3, 1, 1], dtype=torch.float64),
                          rtol=0, atol=1e-15), ratio  # element 1: |x^3| = 64 is the largest


def test_all_scales_every_element_and_the_forward_is_untouched():
    x = torch.linspace(-1, 2, 6, dtype=torch.float64).reshape(2, 3)
    v = torch.full_like(x, 1.5)
    ratio = _gradient(lambda x: plant(x.exp(), 1e-5, "all"), x, v) / _gradient(torch.exp, x, v)
    assert torch.allclose(ratio, torch.full_like(ratio, 1 + 1e-5), rtol=0, atol=1e-15)
    y = x.clone().requires_grad_()
    assert torch.equal(plant(y.exp(), 1e-5, "all"), y.exp())
    with torch.no_grad():  # where no gradient is recorded the plant steps aside
        out = y.exp()
        assert plant(out, 1e-5, "all") is out


def test_planted_spec_is_caught_and_the_clean_one_passes():
    assert not verify(planted(TANH, 1e-3, "one"), checks=["finite_difference"], seed=1,
                      max_examples=3).passed
    assert not verify(planted(TANH, 1e-3, "all"), checks=["forward_mode"], seed=1,
                      max_examples=3).passed  # forward mode sees the true function
    assert verify(planted(TANH, 0.0, "one"), checks=["finite_difference"], seed=1,
                  max_examples=3).passed
    assert TANH.forward.fn is not planted(TANH, 1e-3).forward.fn  # the original is kept


def test_power_reports_the_smallest_caught_and_a_clean_r0():
    rows = power(TANH, checks=["finite_difference", "gradcheck"], dtypes=["float64"],
                 max_examples=3)
    by_check = {row.check: row for row in rows}
    assert set(by_check) == {"finite_difference", "gradcheck"}
    for row in rows:
        assert row.clean, row.clean_headline
        for mode in ("one", "all"):
            assert row.smallest[mode] is not None, (row, mode)  # planting did something
    # The oracle sees far smaller errors than gradcheck's tolerances.
    fd, gc = by_check["finite_difference"].smallest, by_check["gradcheck"].smallest
    assert fd["one"] < gc["one"] and fd["all"] < gc["all"], (fd, gc)


def test_power_skips_checks_that_do_not_apply_and_float64_only_ones():
    rows = power(TANH, checks=["analytic", "gradcheck"], dtypes=["float32"], max_examples=2)
    assert rows == []  # no backward formula; gradcheck runs in float64 only


def test_cli_prints_a_line_per_check_and_fails_when_r0_fails(tmp_path, capsys):
    right = tmp_path / "right.toml"
    right.write_text('[square]\nforward = "x ** 2"\nbackward.x = "grad * 2 * x"\n'
                     'inputs.x = { shape = ["n"] }\n', encoding="utf-8")
    assert main(["power", str(right), "--checks", "analytic,taylor", "--dtypes", "float64",
                 "--max-examples", "3"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith("  ") and not line.startswith("   ")}
    assert set(rows) == {"analytic", "taylor"}, out
    for cells in rows.values():  # two r's, one per mode, each one of the planted errors
        assert [float(cell) in ERRORS for cell in cells] == [True, True], out
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[square]\nforward = "x ** 2"\nbackward.x = "grad * x"\n'
                     'inputs.x = { shape = ["n"] }\n', encoding="utf-8")
    assert main(["power", str(wrong), "--checks", "analytic", "--dtypes", "float64",
                 "--max-examples", "3"]) == 1
    assert "r=0 failed in float64" in capsys.readouterr().out


def test_a_complex_output_is_planted_too():
    z = torch.tensor([1 + 1j, -3 + 0.5j], dtype=torch.complex128, requires_grad=True)
    v = torch.tensor([1.5 - 0.5j, 2.0 + 1j], dtype=torch.complex128)
    (true,) = torch.autograd.grad(z * 2, z, v)
    (wrong,) = torch.autograd.grad(plant(z * 2, 1e-3, "one"), z, v)
    assert torch.allclose(wrong / true, torch.tensor([1, 1 + 1e-3], dtype=torch.complex128),
                          rtol=0, atol=1e-15)  # element 1: |z * 2| is the largest
