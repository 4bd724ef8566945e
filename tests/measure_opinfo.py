"""The harness on PyTorch's OpInfo samples: python tests/measure_opinfo.py

Over the samples of ``tests/opinfo_specs.py`` (the first float64 samples of every
autograd OpInfo, each a plain spec whose only explicit example is the sample's point,
run with max_examples=0; a complex sample in complex128 and complex64), it measures

(a) false positives per check x dtype: a right torch gradient reported wrong at
    OpInfo's point (known torch bugs, ``KNOWN_TORCH_BUGS``, listed apart), with
    the first lines of each message;
(b) exceptions raised out of ``verify`` (type, message, where, op); every run
    follows a plain import of ``torch.testing._internal``, which freezes torch's
    global flags;
(c) planted-bug sensitivity: the sample's forward wrapped in an identity
    ``autograd.Function`` whose backward scales ONE output element's cotangent by
    (1 + r) — the element of largest |value| of the first differentiated output at
    the sample (harness.power.plant, "one") — for r = 1e-4 and 1e-6: the share
    of samples caught by the harness's finite_difference and taylor (float64) and
    gradcheck, and by plain
    ``torch.autograd.gradcheck`` with its default tolerances, split at 64
    differentiable input elements. A sample counts for a check only where the
    unplanted run passed (a false positive or an error cannot "catch") and where
    the plant can move the forward's float64 evaluations at all
    (``planted_resolution``); a sample whose unplanted run discarded its example
    (judged nothing) is left out of that check's share, and listed;
(d) time per sample: the median seconds of one finite_difference example
    (float64) and of one torch.autograd.gradcheck call.

Options: --ops NAME,... (OpInfo names, e.g. sin,addmm.decomposed), --limit N (the
first N samples), --per-op K (samples per op, default 2), --seed S (default 0),
--complex-per-op K (also each op's first K complex128 samples, run as
complex128/complex64 items; default 0), --jobs J (worker processes, forked after
the corpus is built; default 1), --json PATH (every outcome, for a closer look).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import opinfo_specs
from opinfo_specs import CHECKS_PER_DTYPE, KNOWN_TORCH_BUGS, Sample, run

from harness.numerics import richardson, steps
from harness.numerics.allowance import real_view
from harness.power import planted
from harness.report import message

PLANTED = (1e-4, 1e-6)
PLANTED_CHECKS = (("finite_difference", "float64"), ("taylor", "float64"),
                  ("gradcheck", "float64"))
SMALL = 64  # differentiable input elements
# torch.autograd.gradcheck's default (fast_mode=False) builds the dense Jacobian twice,
# with two forwards per input element: slice[1] (24000 inputs x 21600 outputs) ran this
# machine out of memory, and ctc_loss (16000 inputs, a 13 ms forward) takes 7 minutes a
# call. Past this many entries, or this many seconds of forwards, it runs in fast mode,
# with the same default tolerances.
JACOBIAN_LIMIT = 10**7
FULL_MODE_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="comma-separated OpInfo names")
    parser.add_argument("--limit", type=int, help="only the first N samples")
    parser.add_argument("--per-op", type=int, default=opinfo_specs.PER_OP)
    parser.add_argument("--complex-per-op", type=int, default=0,
                        help="also each op's first complex128 samples (complex items)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", help="write every outcome to this file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    corpus = opinfo_specs.load(args.ops.split(",") if args.ops else None, args.per_op,
                               args.complex_per_op)
    samples = corpus.samples[: args.limit] if args.limit else corpus.samples
    print("\n".join(corpus.summary()))
    print(f"measured: {len(samples)} samples, seed {args.seed}, max_examples=0 (the "
          f"sample's point only), torch {torch.__version__}, global flags frozen by the "
          f"import of torch.testing._internal: {torch.backends.flags_frozen()}")
    print()
    _SAMPLES[:] = samples
    if args.json:
        Path(f"{args.json}l").write_text("", encoding="utf-8")
    records = []
    jobs = [(number, args.seed) for number in range(len(samples))]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs, _one_thread) as pool:
            for record in pool.imap_unordered(_measure_job, jobs):
                records.append(record)
                _progress(len(records), len(samples), start, args.json, record)
    else:
        for job in jobs:
            records.append(_measure_job(job))
            _progress(len(records), len(samples), start, args.json, records[-1])
    broken = [r for r in records if "measure_error" in r]
    for record in broken:
        print(f"MEASURING {record['id']} RAISED (left out below): {record['measure_error']}")
    records = [r for r in records if "measure_error" not in r]
    print_false_positives(records)
    print_exceptions(records)
    print_sensitivity(records)
    print_timing(records)
    print(f"\nthe run took {time.perf_counter() - start:.0f} s "
          f"({len(samples)} samples, {args.jobs} job{'s' if args.jobs > 1 else ''})")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, default=str))
    return 0


_SAMPLES: list[Sample] = []  # inherited by forked workers: specs hold closures


def _one_thread() -> None:
    torch.set_num_threads(1)


def _measure_job(job: tuple[int, int]) -> dict:
    """One sample's record; where measuring it raised (outside verify: this script's
    own code, or torch.autograd.gradcheck's set-up), a record saying so."""
    number, seed = job
    sample = _SAMPLES[number]
    try:
        return measure(sample, seed)
    except Exception as error:
        return {"id": sample.id, "measure_error": f"{type(error).__name__}: "
                f"{opinfo_specs._first_line(error)}\n{traceback.format_exc()[-800:]}"}


def _progress(done: int, total: int, start: float, json_path: str | None,
              record: dict) -> None:
    if json_path:  # each record as it comes, one a line: a run cut short keeps them
        with open(f"{json_path}l", "a", encoding="utf-8") as lines:
            lines.write(json.dumps(record, default=str) + "\n")
    if done % 50 == 0:
        print(f"   ... {done}/{total} samples, {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)


def measure(sample: Sample, seed: int) -> dict:
    record = {"id": sample.id, "op": sample.op, "numel": sample.differentiable_numel,
              "notes": list(sample.notes), "adapted": list(sample.adapted),
              "complex": sample.is_complex, "runs": {}, "planted": {}, "torch": {}}
    for dtype, checks in CHECKS_PER_DTYPE.items():
        for check in checks:
            outcome = _run(sample, check, dtype, seed)
            record["runs"][f"{check}/{dtype}"] = outcome
    record["resolution"] = planted_resolution(sample)
    record["torch"]["clean"], record["torch"]["seconds"], record["torch"]["fast"] = \
        torch_gradcheck(sample, 0.0)
    for r in PLANTED:
        for check, dtype in PLANTED_CHECKS:
            if not _judged_clean(record["runs"][f"{check}/{dtype}"]):
                continue  # only where the right gradient was judged, and passed
            outcome = _run(sample, check, dtype, seed, planted(sample.spec, r, "one"))
            record["planted"][f"{check}/{dtype}/{r:g}"] = outcome["status"] == "fail"
        if record["torch"]["clean"] is True:
            passed, _, _ = torch_gradcheck(sample, r)
            record["planted"][f"torch.gradcheck/float64/{r:g}"] = passed is False
    return record


def _judged_clean(outcome: dict) -> bool:
    """The unplanted run passed, and judged its example: where it discarded it (a kink
    within the steps, a forward that rounds to a step function) it judged nothing, and a
    planted run cannot catch what the check declines to judge."""
    return outcome["status"] == "pass" and outcome["examples"] > outcome["discarded"]


def _run(sample: Sample, check: str, dtype: str, seed: int, spec=None) -> dict:
    outcome = run(sample, check, dtype, seed, spec)
    status = outcome.status
    if status == "fail" and spec is None:
        if KNOWN_TORCH_BUGS.get(sample.id, {}).get(f"{check}/{dtype}"):
            status = "torch bug"
        elif f"{check}/{dtype}" in sample.opinfo_expects:
            status = "opinfo xfail"
    result = {"status": status, "seconds": outcome.seconds, "examples": outcome.examples,
              "discarded": outcome.discarded, "reason": outcome.reason}
    if outcome.failures:
        lines = message(outcome.failures[0]).splitlines()
        result["message"] = [line for line in lines if line.strip()][:6]
    return result


def _planted_output(output):
    """The tensor harness.power.plant plants in ("one"): the output itself, or a tuple's
    first differentiated entry."""
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor) and o.requires_grad
                     and (o.is_floating_point() or o.is_complex())), None)
    return output


def planted_resolution(sample: Sample) -> float:
    """How far above float64's resolution the plant can move the forward: 0 where the
    planted element depends on no differentiable input (an empty or constant output),
    else max_j |J_kj| s_j / (eps |f_k|) — J_k the planted element's Jacobian row, s_j
    each input element's own scale (``steps.step_scale``), f_k the element.

    A plant of relative size r changes the gradient by r v_k J_k; over a step of an
    element's whole scale — far larger than any finite difference takes — it moves
    the planted term of phi by r |v_k J_kj| s_j, while evaluating that term rounds by
    an ulp of |v_k f_k|. Where r times this resolution is below 1, no float64
    evaluation of the forward can show the plant: the sample is not counted for r
    (erfc at x = -9: f = 2, J = 1e-35)."""
    leaves = {name: v.clone().requires_grad_() for name, v in sample.leaves().items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = _planted_output(sample.call(sample.with_leaves(list(leaves.values()))))
            if output is None or output.numel() == 0 or not output.requires_grad:
                return 0.0
            index = int(output.detach().abs().reshape(-1).argmax())
            element = output.reshape(-1)[index]
            element = element.abs() if element.is_complex() else element
            grads = torch.autograd.grad(element, list(leaves.values()), allow_unused=True)
    except Exception:
        return 0.0
    moved = 0.0
    for (name, leaf), grad in zip(leaves.items(), grads):
        if grad is None or not grad.numel():
            continue
        scale = steps.step_scale(real_view(leaf.detach()),
                                 sample.spec.inputs[name.split("[")[0]])
        moved = max(moved, float((real_view(grad).abs().double() * scale).max()))
    term = richardson.EPS64 * float(element.detach().abs())
    if moved == 0.0:
        return 0.0
    return moved / term if term > 0 else float("inf")


def _numel(output) -> int:
    if isinstance(output, torch.Tensor):
        return output.numel()
    if isinstance(output, (tuple, list)):
        return sum(_numel(o) for o in output)
    return 0


def torch_gradcheck(sample: Sample, r: float) -> tuple[bool | str, float, bool]:
    """torch.autograd.gradcheck, default tolerances, on the sample's forward with the
    plant (r = 0: the right gradient): True (passed), False (failed) or the exception;
    the seconds it took; whether it ran in fast mode."""
    from harness.power import plant

    def function(*leaves):
        return plant(sample.call(sample.with_leaves(leaves)), r, "one")

    inputs = tuple(v.clone().requires_grad_() for v in sample.leaves().values())
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = sample.differentiable_numel * _numel(sample.call(opinfo_specs._fresh(
            sample.example)))
    seconds = 2 * sample.differentiable_numel * (time.perf_counter() - start)
    fast = entries > JACOBIAN_LIMIT or seconds > FULL_MODE_SECONDS
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            passed = torch.autograd.gradcheck(function, inputs, raise_exception=False,
                                              fast_mode=fast)
    except Exception as error:
        passed = f"{type(error).__name__}: {opinfo_specs._first_line(error)[:100]}"
    return passed, time.perf_counter() - start, fast


def print_false_positives(records: list[dict]) -> None:
    print("(a) false positives at OpInfo's point (a right torch gradient reported wrong)")
    keys = [f"{c}/{d}" for d, checks in CHECKS_PER_DTYPE.items() for c in checks]
    statuses = ("pass", "fail", "torch bug", "opinfo xfail", "error", "skipped")
    print(f"   {'check/dtype':28s}" + "".join(f"{s:>13s}" for s in statuses))
    for key in keys:
        counts = Counter(record["runs"][key]["status"] for record in records)
        print(f"   {key:28s}" + "".join(f"{counts[s]:13d}" for s in statuses))
    print("   fail: a false positive; torch bug: opinfo_specs.KNOWN_TORCH_BUGS; opinfo xfail: "
          "OpInfo marks its own gradient\n   test of the op expectedFailure or skips it; "
          "skipped: the check skipped itself (no forward AD);\n   a complex sample's "
          "float64/float32 rows are its complex128/complex64 runs")
    for key in keys:
        failing = [r for r in records
                   if r["runs"][key]["status"] in ("fail", "torch bug", "opinfo xfail")]
        if not failing:
            continue
        print(f"\n   {key}: {len(failing)}")
        for record in failing:
            outcome = record["runs"][key]
            lines = outcome.get("message", [])
            tag = {"torch bug": " [known torch bug]", "opinfo xfail": " [OpInfo xfail]"}.get(
                outcome["status"], "")
            print(f"     {record['id']} ({record['numel']} elements){tag}")
            for line in lines[:5]:
                print(f"         {line[:150]}")
    print()


def print_exceptions(records: list[dict]) -> None:
    print("(b) exceptions out of verify")
    found = defaultdict(list)
    for record in records:
        for key, outcome in record["runs"].items():
            if outcome["status"] == "error":
                found[outcome["reason"]].append(f"{record['id']} {key}")
    if not found:
        print("   none")
    for reason, where in sorted(found.items(), key=lambda item: -len(item[1])):
        print(f"   {len(where):4d} x {reason[:160]}")
        for item in where[:6]:
            print(f"          {item}")
        if len(where) > 6:
            print(f"          ... {len(where) - 6} more")
    print()


def print_sensitivity(records: list[dict]) -> None:
    print("(c) planted bug: one output element's cotangent x (1 + r), the element of largest "
          "|value|;\n    share of the samples caught (caught/judged), by differentiable "
          "input size; a sample is judged where the unplanted run passed at OpInfo's point")
    unreached = [r["id"] for r in records if not r["resolution"]]
    print(f"    {len(unreached)} samples left out: the planted element depends on no "
          f"differentiable input (empty or constant output)")
    for r in PLANTED:
        hidden = [rec["id"] for rec in records if 0 < rec["resolution"] * r < 1]
        print(f"    r = {r:g}: {len(hidden)} left out, the plant below float64's resolution "
              f"(planted_resolution): {', '.join(hidden[:8])}{' ...' if len(hidden) > 8 else ''}")
    for check, dtype in PLANTED_CHECKS:
        unjudged = [rec["id"] for rec in records
                    if rec["runs"][f"{check}/{dtype}"]["status"] == "pass"
                    and not _judged_clean(rec["runs"][f"{check}/{dtype}"])]
        print(f"    {check}/{dtype}: {len(unjudged)} left out, the unplanted run discarded its "
              f"example: {', '.join(unjudged[:8])}{' ...' if len(unjudged) > 8 else ''}")
    print(f"   {'check':36s}{'r':>7s}{'<= 64':>18s}{'> 64':>18s}{'all':>18s}")
    missed = {}
    for check in (*(f"{c}/{d}" for c, d in PLANTED_CHECKS), "torch.gradcheck/float64"):
        for r in PLANTED:
            key = f"{check}/{r:g}"
            counted = [rec for rec in records
                       if rec["resolution"] * r >= 1 and key in rec["planted"]]
            if not check.startswith("torch"):
                missed[key] = [rec["id"] for rec in counted if not rec["planted"][key]]
            cells = []
            for subset in (lambda n: n <= SMALL, lambda n: n > SMALL, lambda n: True):
                judged = [rec["planted"][key] for rec in counted if subset(rec["numel"])]
                caught = sum(judged)
                share = f"{100 * caught / len(judged):.1f}%" if judged else "-"
                cells.append(f"{share} ({caught}/{len(judged)})")
            label = "harness " + check if not check.startswith("torch") else check + " default"
            print(f"   {label:36s}{r:>7g}" + "".join(f"{c:>18s}" for c in cells))
    for key, ids in missed.items():
        if ids:
            print(f"    missed by {key}: {', '.join(ids[:12])}{' ...' if len(ids) > 12 else ''}")
    torch_errors = Counter(str(r["torch"]["clean"]) for r in records
                           if r["torch"]["clean"] is not True)
    fast = [r["id"] for r in records if r["torch"]["fast"]]
    print(f"    torch.autograd.gradcheck in fast mode (a Jacobian over {JACOBIAN_LIMIT:.0e} "
          f"entries or forwards over {FULL_MODE_SECONDS:g} s): {', '.join(fast) or 'none'}")
    print(f"    torch.autograd.gradcheck on the unplanted samples: "
          f"{sum(r['torch']['clean'] is True for r in records)} pass, "
          + ", ".join(f"{n} x {what[:80]}" for what, n in torch_errors.most_common(4)))
    print()


def print_timing(records: list[dict]) -> None:
    print("(d) time per sample (median seconds)")
    for label, subset in (("<= 64", lambda n: n <= SMALL), ("> 64", lambda n: n > SMALL),
                          ("all", lambda n: True)):
        chosen = [r for r in records if subset(r["numel"])]
        fd = [r["runs"]["finite_difference/float64"]["seconds"]
              / max(r["runs"]["finite_difference/float64"]["examples"], 1)
              for r in chosen if r["runs"]["finite_difference/float64"]["status"] != "error"]
        tg = [r["torch"]["seconds"] for r in chosen if r["torch"]["clean"] is True]
        if fd and tg:
            print(f"   {label:6s} harness finite_difference (one example) "
                  f"{statistics.median(fd):.4f} s, torch.autograd.gradcheck "
                  f"{statistics.median(tg):.4f} s ({len(chosen)} samples)")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
