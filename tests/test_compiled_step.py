"""bench/compiled_step.py: the circuit's time step under torch.compile against the eager step, in one process."""

import re


def test_the_compiled_step_trains_as_the_eager_step(capsys, bench_script):
    script = bench_script("compiled_step")
    assert script.main(["--backend", "aot_eager", "--arch", "64-16-16-10", "--batch", "8", "--steps", "5",
                        "--rounds", "2", "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["bioleaf", "bioleaf_local", "bioleaf_one"]
    for line in lines:
        assert re.search(r"compiled/eager \d+\.\d{3}", line)
        assert line.endswith("max weight difference 0.00e+00")  # Dynamo's graphs, eager kernels: the same bits


def test_an_unknown_device_is_one_line_error(capsys, bench_script):
    assert bench_script("compiled_step").main(["--device", "tpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("compiled_step: --device") and "\n" not in err
