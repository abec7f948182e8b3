"""Run cocotb test modules on the Verilator models."""

import json
import os
import re
import sys

from .build import BUILD, ROOT, model as build_model

__all__ = ["run_cocotb", "SimFailure"]


class SimFailure(AssertionError):
    pass


def _results(xml):
    """(tests, failures) from a cocotb results file."""
    from cocotb_tools.runner import get_results
    return get_results(xml)


def run_cocotb(module, config, *, top="ptlnic", testcase=None, name=None, env=None, seed=None, log_file=None,
               quiet=False):
    """Run the cocotb tests of ``module`` on the model for ``config``.

    Fails if the simulation ran no test or any test failed. With ``WAVES=1``
    the model is built with FST tracing and each run writes ``<name>.fst``.
    Returns the path of the results file.
    """
    m = build_model(top, config)
    if name is None:
        which = "all" if testcase is None else (testcase if isinstance(testcase, str) else "+".join(testcase))
        name = re.sub(r"[^\w.+-]+", "_", f"{module.rsplit('.', 1)[-1]}-{config.key()}-{which}")[:120]
    if top != "ptlnic":
        name = f"{name}-{top}"
    run_dir = BUILD / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.xml"
    test_args = ["--trace", "--trace-file", str(run_dir / f"{name}.fst")] if m.waves else []
    # The runner hands sys.path to the simulator's Python as PYTHONPATH.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    extra_env = {"PTLNIC_CONFIG": json.dumps(config.as_dict())}
    extra_env.update(env or {})
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    kwargs = {}
    if log_file is not None:
        kwargs["log_file"] = log_file
    # cocotb's runner reads PYTEST_CURRENT_TEST to name files and to exit on
    # failure; we check the results ourselves.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(test_module=module, hdl_toplevel=top, hdl_toplevel_lang="verilog", build_dir=m.build_dir,
                    test_dir=run_dir, testcase=testcase, results_xml=str(results), extra_env=extra_env,
                    test_args=test_args, seed=seed, waves=m.waves, **kwargs)
    except SystemExit as exc:
        raise SimFailure(f"simulation of {module} exited with status {exc.code}") from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    if not results.exists():
        raise SimFailure(f"simulation of {module} wrote no results (crashed?)")
    ntests, nfail = _results(results)
    if ntests == 0:
        raise SimFailure(f"{module}: no cocotb test ran (testcase filter {testcase!r})")
    if nfail:
        raise SimFailure(f"{module}: {nfail} of {ntests} cocotb tests failed; see the log above"
                         + (f" and {log_file}" if log_file else ""))
    if m.waves and not quiet:
        print(f"waveform: {run_dir / (name + '.fst')}")
    return results
