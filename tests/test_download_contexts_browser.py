"""Downloads inside content drawn by a callback, in headless Chromium: a ``FileOutput`` on a
``dcc.Download`` downloads exactly as ``dcc.send_*`` does: nothing when its button appears (a tab, a
page of ``dash.page_registry``, a pattern-matching row, a background callback's tab) or comes back (a
tab of the layout shown again), one file per click (also the same file twice).

Each scenario runs twice in the same browser: with ``Output(..., "data")`` and ``dcc.send_*`` (the
control: what Dash itself does) and with ``FileOutput``. After every step the test counts the files
Chromium saved; the two traces must be the same, and the control's must be what the scenario expects
(else the test, not the library, is wrong).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dash
import diskcache
import pytest
from cachelib import FileSystemCache
from dash import MATCH, DiskcacheManager, Patch, ctx, dcc, html
from dash.dcc.express import send_bytes, send_string  # dcc.send_* (dash.dcc does not re-export them to mypy)
from dash_extensions.enrich import DashProxy, Input, Output
from selenium.webdriver.common.by import By

from dfc_transform import File, FileOutput, FileServeTransform

from .browser_support import (
    CHROMEDRIVER,
    RequestLog,
    missing_browser,
    serving,
    set_download_dir,
    start_browser,
    wait_until,
)

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

NAME = "Überblick \u2013 données 報告.csv"  # an en dash, accents, CJK and spaces
CONTENT = bytes(range(256)) * 256  # 64 KiB, every byte value
#: How long a step that must save nothing is watched: absence cannot be polled, so anything unasked
#: gets this long to appear (on loopback a download fired by a callback lands well within it).
QUIET = 2.0
#: A background job adds a process start and the renderer's polls (interval=250 ms below).
QUIET_BACKGROUND = 4.0
#: How long an expected download may take.
DOWNLOAD_TIMEOUT = 20.0

#: The two ways of writing the same export: Dash's own, then ours.
CONTROL = "dcc.send_*"
FILE_OUTPUT = "FileOutput"
VARIANTS = (CONTROL, FILE_OUTPUT)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """dash's selenium Browser on a headless Chromium (each step of a scenario then sets its own download folder)."""
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)  # a skip would hide a missing install step in CI
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    chromium = start_browser(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield chromium
    finally:
        chromium.driver.quit()


@pytest.fixture
def fresh_page_registry() -> Iterator[None]:
    """An empty ``dash.page_registry`` (a global of dash) for this test, the former one restored after."""
    saved = dict(dash.page_registry)
    dash.page_registry.clear()
    try:
        yield
    finally:
        dash.page_registry.clear()
        dash.page_registry.update(saved)


# -- the download folders ---------------------------------------------------------------------------


def _complete(folder: Path) -> list[Path]:
    """The files Chromium has finished saving (its ``.crdownload`` partials left out)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".crdownload"))


def _partials(folder: Path) -> list[Path]:
    return list(folder.glob("*.crdownload")) if folder.is_dir() else []


def _settle(folder: Path, expected: int, quiet: float) -> list[Path]:
    """The files saved in ``folder`` once the step is over: wait (with a deadline) until ``expected`` are
    saved, then watch ``quiet`` seconds more for any further one (a download nobody asked for, a second
    file for one click): absence cannot be polled for, so anything unasked gets that long to appear.
    Fewer files than expected is no error here: the trace says so, compared once every step has run."""
    _poll(lambda: len(_complete(folder)) >= expected and not _partials(folder), DOWNLOAD_TIMEOUT)
    _poll(lambda: len(_complete(folder)) + len(_partials(folder)) > expected, quiet)
    _poll(lambda: not _partials(folder), DOWNLOAD_TIMEOUT)  # one started in the window, counted once saved
    return _complete(folder)


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


# -- steps -------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One thing the user does, and how many files it must save (0: no download may start)."""

    label: str
    act: Callable[[Any], None]
    saves: int


@dataclass
class Done:
    """What one step did: the files Chromium saved, the served files the browser fetched."""

    label: str
    saved: list[Path]
    fetched: int


def _fetches(log: RequestLog) -> int:
    return len([e for e in log.to("/_dash-files/") if e.method == "GET"])


def _run(driver: Any, url: str, log: RequestLog, folder: Path, steps: list[Step], quiet: float) -> list[Done]:
    """Do ``steps`` in the app at ``url``, each with a download folder of its own under ``folder``.

    Headless Chromium told by CDP to "allow" downloads does not number copies ("name (1).csv"): a second
    file of the same name replaces the first. One folder per step keeps every click's file.
    """
    done: list[Done] = []
    for number, step in enumerate(steps):
        set_download_dir(driver, folder / f"step-{number}")
        before = _fetches(log)
        if number == 0:
            driver.get(url)  # the first step opens the app
        step.act(driver)
        saved = _settle(folder / f"step-{number}", step.saves, quiet)
        done.append(Done(step.label, saved, _fetches(log) - before))
    return done


def _totals(done: list[Done]) -> list[tuple[str, int]]:
    """The number of files saved after each step, in all."""
    total = 0
    trace = []
    for step in done:
        total += len(step.saved)
        trace.append((step.label, total))
    return trace


def _play(
    driver: Any,
    tmp_path: Path,
    build: Callable[[str, Path], DashProxy],
    steps: list[Step],
    *,
    quiet: float = QUIET,
    before_each: Callable[[], None] | None = None,
) -> dict[str, list[Done]]:
    """Run ``steps`` with each variant's app (the control first) and check that the two saved as many
    files after every step, as many as the steps say. The first step opens the app."""
    expected: list[tuple[str, int]] = []
    for step in steps:
        expected.append((step.label, (expected[-1][1] if expected else 0) + step.saves))
    done: dict[str, list[Done]] = {}
    for variant in VARIANTS:
        if before_each is not None:
            before_each()
        work = tmp_path / variant.replace("*", "x")
        with serving(build(variant, work).server) as (url, log):
            done[variant] = _run(driver, url, log, work / "downloads", steps, quiet)
            driver.get("about:blank")  # leave the page before its server goes
    control, ours = _totals(done[CONTROL]), _totals(done[FILE_OUTPUT])
    assert control == expected, (
        f"Dash itself ({CONTROL}) did not save files as this scenario expects, so the test is wrong; "
        f"files saved after each step: {control}"
    )
    assert ours == control, (
        f"files saved after each step (in all), {FILE_OUTPUT}: {ours}; {CONTROL}: {control}; "
        f"{FILE_OUTPUT} saved {[(d.label, [p.name for p in d.saved]) for d in done[FILE_OUTPUT]]}"
    )
    # Same-named files in one step would replace each other: the served files fetched count every one.
    fetched = [(d.label, d.fetched) for d in done[FILE_OUTPUT]]
    assert fetched == [(d.label, len(d.saved)) for d in done[FILE_OUTPUT]], f"served files fetched: {fetched}"
    return done


def _saved(done: list[Done]) -> list[tuple[str, bytes]]:
    """Every file saved, step by step: (its name, its content)."""
    return [(p.name, p.read_bytes()) for step in done for p in step.saved]


def _wait_for(element_id: str) -> Callable[[Any], None]:
    def present(driver: Any) -> None:
        wait_until(lambda: driver.find_elements(By.ID, element_id), message=f"#{element_id} never appeared")

    return present


def _click(element_id: str, then: str | None = None) -> Callable[[Any], None]:
    """Click ``#element_id`` (waiting for it), then wait for ``#then`` if given."""
    return _click_selector(f"#{element_id}", None if then is None else f"#{then}")


def _click_selector(selector: str, then: str | None = None) -> Callable[[Any], None]:
    def act(driver: Any) -> None:
        found = wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, selector), message=f"{selector} never appeared"
        )
        found[0].click()
        if then is not None:
            wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, then), message=f"{then} never appeared")

    return act


# -- 1. a dcc.Tabs tab drawn by a callback -----------------------------------------------------------


def _tabs_layout() -> html.Div:
    return html.Div(
        [
            dcc.Tabs(
                id="tabs",
                value="one",
                children=[
                    dcc.Tab(label="One", value="one", id="tab-one"),
                    dcc.Tab(label="Export", value="two", id="tab-two"),
                ],
            ),
            html.Div(id="content"),
        ]
    )


def _tab_content(value: str) -> Any:
    if value == "two":
        return html.Div([html.Button("Export", id="export"), dcc.Download(id="dl")])
    return html.P("the first tab", id="first")


def _tabs_app(variant: str, work: Path) -> DashProxy:
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(FileSystemCache(str(work / "store"), threshold=0))],
        suppress_callback_exceptions=True,  # the button and the Download are drawn by a callback
    )
    app.layout = _tabs_layout()

    @app.callback(Output("content", "children"), Input("tabs", "value"))
    def render(value: str) -> Any:
        return _tab_content(value)

    if variant == CONTROL:

        @app.callback(Output("dl", "data"), Input("export", "n_clicks"), prevent_initial_call=True)
        def send(n: int | None) -> Any:
            return send_bytes(CONTENT, NAME)

    else:

        @app.callback(
            FileOutput("dl", "data", filename=NAME), Input("export", "n_clicks"), prevent_initial_call=True
        )
        def export(n: int | None) -> Any:
            return io.BytesIO(CONTENT)

    return app


def _tab_steps() -> list[Step]:
    """Open the app, show the export tab, leave it and come back (nothing saved), click three times."""
    return [
        Step("open the app", _wait_for("first"), 0),
        Step("show the export tab", _click("tab-two", then="export"), 0),
        Step("back to the first tab", _click("tab-one", then="first"), 0),
        Step("the export tab again", _click("tab-two", then="export"), 0),
        Step("click", _click("export"), 1),
        Step("click again", _click("export"), 1),
        Step("click a third time", _click("export"), 1),
    ]


def test_a_download_in_a_tab_saves_once_per_click_and_never_on_showing_the_tab(
    browser: Any, tmp_path: Path
) -> None:
    done = _play(browser.driver, tmp_path, _tabs_app, _tab_steps())
    for variant in VARIANTS:
        assert _saved(done[variant]) == [(NAME, CONTENT)] * 3, variant


def _static_tabs_app(variant: str, work: Path) -> DashProxy:
    """The Download in a tab of the layout itself: dcc.Tabs unmounts it when another tab is shown and
    mounts it again, its ``data`` (the last file) unchanged, when it comes back."""
    app = DashProxy(
        __name__, transforms=[FileServeTransform(FileSystemCache(str(work / "store"), threshold=0))]
    )
    app.layout = dcc.Tabs(
        id="tabs",
        value="one",
        children=[
            dcc.Tab(
                [html.Button("Export", id="export"), dcc.Download(id="dl")],
                label="Export",
                value="one",
                id="tab-one",
            ),
            dcc.Tab(html.P("the other tab", id="other"), label="Other", value="two", id="tab-two"),
        ],
    )
    if variant == CONTROL:

        @app.callback(Output("dl", "data"), Input("export", "n_clicks"), prevent_initial_call=True)
        def send(n: int | None) -> Any:
            return send_bytes(CONTENT, NAME)

    else:

        @app.callback(
            FileOutput("dl", "data", filename=NAME), Input("export", "n_clicks"), prevent_initial_call=True
        )
        def export(n: int | None) -> Any:
            return io.BytesIO(CONTENT)

    return app


def test_a_download_in_a_tab_of_the_layout_saves_nothing_when_its_tab_comes_back(
    browser: Any, tmp_path: Path
) -> None:
    steps = [
        Step("open the app", _wait_for("export"), 0),
        Step("click", _click("export"), 1),
        Step("show the other tab", _click("tab-two", then="other"), 0),
        Step("back to the export tab", _click("tab-one", then="export"), 0),
        Step("click again", _click("export"), 1),
    ]
    done = _play(browser.driver, tmp_path, _static_tabs_app, steps)
    for variant in VARIANTS:
        assert _saved(done[variant]) == [(NAME, CONTENT)] * 2, variant


# -- 2. a page of dash.page_registry -----------------------------------------------------------------


def _pages_app(variant: str, work: Path) -> DashProxy:
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(FileSystemCache(str(work / "store"), threshold=0))],
        use_pages=True,
        pages_folder="",
        suppress_callback_exceptions=True,  # the export page's components are not in the first layout
    )
    dash.register_page("a", path="/", layout=html.P("the home page", id="home"))
    dash.register_page(
        "b", path="/export", layout=html.Div([html.Button("Export", id="export"), dcc.Download(id="dl")])
    )
    app.layout = html.Div(
        [
            dcc.Link("Home", href="/", id="to-home"),
            dcc.Link("Export", href="/export", id="to-export"),
            dash.page_container,
        ]
    )
    if variant == CONTROL:

        @app.callback(Output("dl", "data"), Input("export", "n_clicks"), prevent_initial_call=True)
        def send(n: int | None) -> Any:
            return send_bytes(CONTENT, NAME)

    else:

        @app.callback(
            FileOutput("dl", "data", filename=NAME), Input("export", "n_clicks"), prevent_initial_call=True
        )
        def export(n: int | None) -> Any:
            return io.BytesIO(CONTENT)

    return app


@pytest.mark.usefixtures("fresh_page_registry")
def test_a_download_on_a_page_saves_once_per_click_and_never_on_navigating_to_it(
    browser: Any, tmp_path: Path
) -> None:
    steps = [
        Step("open the home page", _wait_for("home"), 0),
        Step("go to the export page", _click("to-export", then="export"), 0),
        Step("back home", _click("to-home", then="home"), 0),
        Step("the export page again", _click("to-export", then="export"), 0),
        Step("click", _click("export"), 1),
        Step("click again", _click("export"), 1),
    ]
    done = _play(browser.driver, tmp_path, _pages_app, steps, before_each=dash.page_registry.clear)
    for variant in VARIANTS:
        assert _saved(done[variant]) == [(NAME, CONTENT)] * 2, variant


# -- 3. pattern-matching rows added by a callback ------------------------------------------------


def _row_name(index: int) -> str:
    return f"Zeile {index} \u2013 行.txt"


def _row_text(index: int) -> str:
    return f"row {index}: données, 報告 \u2713\n"


def _rows_app(variant: str, work: Path) -> DashProxy:
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(FileSystemCache(str(work / "store"), threshold=0))],
        suppress_callback_exceptions=True,  # the rows are added by a callback
    )
    app.layout = html.Div([html.Button("Add a row", id="add"), html.Div([], id="rows")])

    @app.callback(Output("rows", "children"), Input("add", "n_clicks"), prevent_initial_call=True)
    def add(n: int) -> Any:
        rows = Patch()
        rows.append(
            html.Div(
                [
                    html.Button(f"Export row {n}", id={"type": "go", "index": n}),
                    dcc.Download(id={"type": "dl", "index": n}),
                ],
                id=f"row-{n}",
            )
        )
        return rows

    if variant == CONTROL:

        @app.callback(
            Output({"type": "dl", "index": MATCH}, "data"),
            Input({"type": "go", "index": MATCH}, "n_clicks"),
            prevent_initial_call=True,
        )
        def send(n: int | None) -> Any:
            index = ctx.triggered_id["index"]
            return send_string(_row_text(index), _row_name(index))

    else:

        @app.callback(
            FileOutput({"type": "dl", "index": MATCH}, "data"),
            Input({"type": "go", "index": MATCH}, "n_clicks"),
            prevent_initial_call=True,
        )
        def export(n: int | None) -> Any:
            index = ctx.triggered_id["index"]
            return File(io.StringIO(_row_text(index)), filename=_row_name(index))

    return app


def _row_button(index: int) -> str:
    return f"#row-{index} button"


def test_pattern_matching_rows_save_only_the_clicked_rows_file(browser: Any, tmp_path: Path) -> None:
    steps = [
        Step("open the app", _wait_for("add"), 0),
        Step("add row 1", _click("add", then="row-1"), 0),
        Step("add row 2", _click("add", then="row-2"), 0),
        Step("add row 3", _click("add", then="row-3"), 0),
        Step("click row 2", _click_selector(_row_button(2)), 1),
        Step("add row 4", _click("add", then="row-4"), 0),
        Step("click row 4", _click_selector(_row_button(4)), 1),
    ]
    done = _play(browser.driver, tmp_path, _rows_app, steps)
    expected = [(_row_name(i), _row_text(i).encode()) for i in (2, 4)]
    for variant in VARIANTS:
        assert _saved(done[variant]) == expected, variant


# -- 4. a background callback, its Download in a tab drawn by a callback --------------------------


def _background_app(variant: str, work: Path) -> DashProxy:
    # The job runs in a process of its own (forked by DiskcacheManager); the FileSystemCache, unlike a
    # SimpleCache, is shared with the web process that serves the file.
    jobs = DiskcacheManager(diskcache.Cache(str(work / "jobs")))
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(FileSystemCache(str(work / "store"), threshold=0))],
        background_callback_manager=jobs,
        suppress_callback_exceptions=True,  # the button and the Download are drawn by a callback
    )
    app.layout = _tabs_layout()

    @app.callback(Output("content", "children"), Input("tabs", "value"))
    def render(value: str) -> Any:
        return _tab_content(value)

    if variant == CONTROL:

        @app.callback(
            Output("dl", "data"),
            Input("export", "n_clicks"),
            background=True,
            interval=250,
            prevent_initial_call=True,
        )
        def send(n: int | None) -> Any:
            return send_bytes(CONTENT, NAME)

    else:

        @app.callback(
            FileOutput("dl", "data", filename=NAME),
            Input("export", "n_clicks"),
            background=True,
            interval=250,
            prevent_initial_call=True,
        )
        def export(n: int | None) -> Any:
            return io.BytesIO(CONTENT)

    return app


def test_a_background_download_in_a_tab_saves_once_per_click(browser: Any, tmp_path: Path) -> None:
    steps = _tab_steps()[:-1]  # two clicks: each waits for a job
    done = _play(browser.driver, tmp_path, _background_app, steps, quiet=QUIET_BACKGROUND)
    for variant in VARIANTS:
        assert _saved(done[variant]) == [(NAME, CONTENT)] * 2, variant
