"""Every Python code block of the README and of the docs site runs, so the docs cannot drift.

The blocks are the fenced ``python`` blocks of ``README.md`` and ``docs/**/*.md``, indented
ones (in content tabs) included. Each runs in a process of its own, forked from a server that
has imported Dash and dfc_transform once, as the ``__main__`` module of a fresh temporary
directory (its working directory) with ``DFC_TRANSFORM_DIR`` inside it. ``Dash.run`` and
``Flask.run`` do nothing there, so ``if __name__ == "__main__": app.run()`` does not serve.

Then every Dash app the block made (that has a layout) is exercised as a browser would: its page must load
(the transforms apply, unhandled ``FileOutput``s are refused), and each server callback whose
inputs are all ``n_clicks`` (and that has no state, no pattern-matching id, and is not a
background callback) is fired once, as a click; the answer must be 200 or 204, and every file
URL in it must answer 200. A ``RuntimeWarning`` fails the block too: the docs show code that
runs cleanly.

Conventions for writers of the docs:

- A block that must not run is marked on the line before its fence with an HTML comment,
  which MkDocs and GitHub do not show, giving the reason:
  ``<!-- docs-test: skip, needs a Celery worker -->``. Keep these few.
- Blocks read their secrets and servers from the environment, as apps do: ``SECRET_KEY``,
  ``REDIS_URL`` and ``MEMCACHED_SERVERS`` (comma-separated ``host:port``). This test sets the
  key, and points the servers at a redis-server and a memcached of its own, started only for
  blocks that name them: such blocks run against real servers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import traceback
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b[,:]?\s*(?P<reason>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
#: Seconds a block may take, its callbacks fired.
BLOCK_TIMEOUT = 120
#: Where file URLs start (see dfc_transform.http.ROUTE_NAME).
FILE_ROUTE = "/_dash-files/"
#: Imported once by the server the blocks' processes are forked from.
PRELOAD = ["dash", "dash_extensions.enrich", "dfc_transform", "flask", "cachelib", "matplotlib.figure"]


@dataclass(frozen=True)
class Block:
    """A fenced python block: where it is, its code, and why it is skipped (if it is)."""

    path: Path
    #: The line of the opening fence, counted from 1.
    line: int
    source: str
    skip: str | None

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> Iterator[Block]:
    """The fenced ``python`` blocks of a Markdown file, dedented to their fence."""
    lines = path.read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip().split(maxsplit=1)
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines):
            closing = lines[i].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        if not info or info[0] not in ("python", "py"):
            continue
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP.match(previous)
        yield Block(path, start + 1, "\n".join(body) + "\n", marker["reason"] if marker else None)


BLOCKS = [block for document in DOCUMENTS for block in blocks_of(document)]


def test_the_docs_have_blocks_and_every_skip_says_why() -> None:
    assert len(BLOCKS) >= 20, [str(b) for b in BLOCKS]
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert all(b.skip for b in skipped), [str(b) for b in skipped if not b.skip]
    assert len(skipped) <= len(BLOCKS) // 5, f"too many blocks skipped: {[str(b) for b in skipped]}"


@pytest.fixture(scope="module")
def forker() -> multiprocessing.context.ForkServerContext:
    """Processes forked from a server that imported Dash once: a block starts in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*PRELOAD, __name__])
    return context


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_block_runs(
    block: Block,
    forker: multiprocessing.context.ForkServerContext,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if block.skip is not None:
        pytest.skip(f"{block}: {block.skip}")
    env = {"DFC_TRANSFORM_DIR": str(tmp_path / "store"), "MPLBACKEND": "Agg", "SECRET_KEY": "docs"}
    if "REDIS_URL" in block.source:
        env["REDIS_URL"] = f"redis://{request.getfixturevalue('redis_server').address}/0"
    if "MEMCACHED_SERVERS" in block.source:
        env["MEMCACHED_SERVERS"] = request.getfixturevalue("memcached_server").address
    if "S3_ENDPOINT_URL" in block.source:  # the session's SeaweedFS, with the buckets the block names
        seaweed = request.getfixturevalue("seaweed_server")
        for bucket in re.findall(r'S3Store\("([^"]+)"', block.source):
            seaweed.make_bucket(bucket)
        env.update(
            S3_ENDPOINT_URL=seaweed.endpoint_url,
            AWS_ACCESS_KEY_ID=seaweed.access_key,
            AWS_SECRET_ACCESS_KEY=seaweed.secret_key,
            AWS_DEFAULT_REGION=seaweed.region,
        )
    receiver, sender = forker.Pipe(duplex=False)
    process = forker.Process(
        target=run_block,
        args=(str(block.path), block.line, block.source, str(tmp_path), env, sender),
        name=f"docs block {block}",
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(BLOCK_TIMEOUT):
            pytest.fail(f"{block}: the block did not finish within {BLOCK_TIMEOUT} s")
        result = receiver.recv()
    except EOFError:
        result = f"the block's process died (exit code {process.exitcode})"
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    if result:
        pytest.fail(f"{block}: {result}", pytrace=False)


# -- in the block's process ---------------------------------------------------------------------


def run_block(path: str, line: int, source: str, workdir: str, env: dict[str, str], out: Connection) -> None:
    """Run one block as ``__main__`` and exercise its apps; send ``""`` or what went wrong."""
    try:
        out.send(_run(path, line, source, workdir, env))
    except BaseException:
        out.send(traceback.format_exc())
    finally:
        out.close()


def _run(path: str, line: int, source: str, workdir: str, env: dict[str, str]) -> str:
    import dash
    import flask

    os.chdir(workdir)
    os.environ.update(env)
    dash.Dash.run = _not_serving  # type: ignore[method-assign]
    flask.Flask.run = _not_serving  # type: ignore[method-assign]
    module = types.ModuleType("__main__")
    module.__file__ = os.path.join(workdir, "app.py")
    sys.modules["__main__"] = module
    # Padded so that a traceback names the Markdown file's own line numbers.
    code = compile("\n" * line + source, path, "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(code, module.__dict__)
        except BaseException:
            return "the block raised:\n" + traceback.format_exc()
        problems = [p for app in _apps_in(module.__dict__) for p in _exercise(app)]
    problems += [
        f"{w.category.__name__} at {w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, RuntimeWarning)
    ]
    return "\n".join(problems)


def _not_serving(self: Any, *args: Any, **kwargs: Any) -> None:
    """``app.run()`` in a block: nothing to serve, the test exercises the app itself."""


def _apps_in(namespace: dict[str, Any]) -> list[Any]:
    import dash

    found: dict[int, Any] = {}
    for value in namespace.values():
        # An app without a layout is a snippet of configuration, not an app to run.
        if isinstance(value, dash.Dash) and value.layout is not None:
            found.setdefault(id(value), value)
    return list(found.values())


def _exercise(app: Any) -> list[str]:
    """Load the app's page and click each button-driven callback once; return what failed."""
    send = _sender(app)
    prefix = app.config.routes_pathname_prefix
    status, text = send("GET", prefix, None)
    if status != 200:
        return [f"GET {prefix} answered {status}: {text[:2000]}"]
    problems = []
    for dep in json.loads(send("GET", prefix + "_dash-dependencies", None)[1]):
        inputs, spec = dep["inputs"], dep["output"]
        if (
            dep.get("clientside_function")
            or dep.get("background")
            or dep["state"]
            or not inputs
            or "{" in spec
            or any(i["property"] != "n_clicks" or "{" in str(i["id"]) for i in inputs)
        ):
            continue
        body = {
            "output": spec,
            "outputs": _outputs(spec),
            "inputs": [{**i, "value": 1} for i in inputs],
            "changedPropIds": [f"{inputs[0]['id']}.n_clicks"],
            "state": [],
        }
        try:
            status, text = send("POST", prefix + "_dash-update-component", body)
        except Exception:
            problems.append(f"callback {spec} raised:\n{traceback.format_exc()}")
            continue
        if status not in (200, 204):
            problems.append(f"callback {spec} answered {status}: {text[:2000]}")
            continue
        for url in _file_urls(_json_or_none(text)):
            # URLs carry the prefix the browser sees; the test client routes without a proxy's part.
            seen = app.config.requests_pathname_prefix
            got, _ = send("GET", prefix + url[len(seen) :] if url.startswith(seen) else url, None)
            if got != 200:
                problems.append(f"callback {spec}: GET {url} answered {got}")
    return problems


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _sender(app: Any) -> Callable[[str, str, Any], tuple[int, str]]:
    """``send(method, url, json_body)`` -> ``(status, text)`` on the test client of the app's server."""
    server = getattr(getattr(app, "backend", None), "server_type", "flask")
    if server == "flask":
        app.server.config["PROPAGATE_EXCEPTIONS"] = True  # the error itself, not a 500 page
        http = app.server.test_client()

        def send(method: str, url: str, body: Any) -> tuple[int, str]:
            answer = http.open(url, method=method, json=body)
            return answer.status_code, answer.get_data().decode("utf-8", "replace")

        return send
    # Quart and FastAPI (prefixes aside, which no block of theirs uses): the suite's own clients.
    from .server_clients import open_client

    client = open_client(app)

    def send_through(method: str, url: str, body: Any) -> tuple[int, str]:
        reply = client.get(url) if body is None else client.post_json(url, body)
        return reply.status, reply.text

    return send_through


def _outputs(spec: str) -> Any:
    """The ``outputs`` of an update request for an output spec: ``a.b`` or ``..a.b...c.d..``."""
    multi = spec.startswith("..") and spec.endswith("..")
    parts = spec[2:-2].split("...") if multi else [spec]
    outputs = []
    for part in parts:
        ident, _, prop = part.rpartition(".")
        outputs.append({"id": ident, "property": prop.split("@", 1)[0]})
    return outputs if multi else outputs[0]


def _file_urls(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if FILE_ROUTE in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _file_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _file_urls(item)


# -- the README ------------------------------------------------------------------------------------

README = ROOT / "README.md"
#: The two commands a reader copies first: the demo, and the tests.
COMMANDS = ['pip install -e ".[examples]" && python examples/downloads.py', "bash .ci/run"]


def test_the_readme_is_short() -> None:
    assert len(README.read_bytes()) <= 8 * 1024


def test_the_readme_opens_with_the_two_commands() -> None:
    text = README.read_text("utf-8")
    first = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)[:2]
    assert [b.strip() for b in first] == COMMANDS


def test_the_readme_links_to_files_that_exist() -> None:
    text = README.read_text("utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing


def test_the_demo_command_names_files_that_exist() -> None:
    assert (ROOT / "examples" / "downloads.py").is_file()
    assert (ROOT / ".ci" / "run").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert re.search(r"^examples = \[", pyproject, flags=re.M)
