"""eval/bench_wiener_filter.py: a row per size, a filter that pays, bad input."""

import pytest

from eval import bench_wiener_filter


def test_each_size_gets_a_row_with_a_filter(capsys):
    bench_wiener_filter.main(["--sizes", "48x40,40x56", "--repeats", "1", "--lmbda", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines[3:]]
    assert [row[0] for row in rows] == ["48x40", "40x56"]
    for row in rows:
        assert float(row[1]) > 0 and float(row[2]) > 0 and int(row[3]) > 2


@pytest.mark.parametrize("argv", [["--sizes", "0x4"], ["--repeats", "0"]])
def test_bad_arguments_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as info:
        bench_wiener_filter.main(argv)
    assert info.value.code == 2 and "error" in capsys.readouterr().err
