"""pytest hooks for the whole repository: a table of per-notebook times at the end of a notebook run."""
from collections import defaultdict

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration  # setup (kernel start), cell run and teardown


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook times")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{path:45s} {seconds:8.1f} s")
    terminalreporter.write_line(f"{'total':45s} {sum(_notebook_seconds.values()):8.1f} s")
