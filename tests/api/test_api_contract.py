"""The service's contract in ``api/``, checked against ``allocator serve`` on 127.0.0.1.

``api/openapi.json`` is what the running server serves at ``/openapi.json`` (byte for byte, as
``python -m allocator.api.openapi`` writes it); ``api/README.md`` has a section, with a curl and
a Python example, for every route of that document; the request/response pairs in
``api/examples/`` replay in order against a live server and get the status, headers and
bodies they show. The example format (patterns such as ``<number>``, ``${plan_id}``
variables, ``"...": "..."`` for open objects) is described in ``api/README.md``.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from allocator.api.openapi import REGENERATE, document, main, render
from tests.api.test_api_server import Server

API = Path(__file__).parents[2] / "api"
EXAMPLES = API / "examples"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
MAX_POLL_SECONDS = 120.0  # whatever an example asks, a poll ends by then


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One ``allocator serve`` (its own data folder, default settings) for the module's tests."""
    server = Server(tmp_path_factory.mktemp("contract") / "data").start()
    try:
        yield server
    finally:
        server.stop()


# --- api/openapi.json ------------------------------------------------------------------------

def test_openapi_json_is_what_the_server_serves(live):
    served = live.client.get("/openapi.json")
    assert served.status_code == 200, served.text
    expected = render(served.json())
    stored = (API / "openapi.json").read_text(encoding="utf-8") if (API / "openapi.json").is_file() else None
    if stored != expected:
        pytest.fail(drift_message(stored, served.json()), pytrace=False)
    assert render(document()) == expected, ("python -m allocator.api.openapi exports another document than the "
                                            "server serves at /openapi.json")


def test_the_exporter_writes_and_checks_the_file(tmp_path, capsys):
    written = tmp_path / "openapi.json"
    assert main(["--out", str(written)]) == 0
    assert main(["--check", str(written)]) == 0 and capsys.readouterr().err == ""
    written.write_text(written.read_text().replace('"title": "allocator"', '"title": "other"', 1))
    assert main(["--check", str(written)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "missing.json")]) == 1


def drift_message(stored: str | None, served: dict) -> str:
    """What differs between api/openapi.json and the served document, and how to regenerate the file."""
    fix = f"Regenerate it with `{REGENERATE}` and review the diff."
    if stored is None:
        return f"api/openapi.json is missing. {fix}"
    try:
        found = json.loads(stored)
    except json.JSONDecodeError as error:
        return f"api/openapi.json is not JSON ({error}). {fix}"
    changes = differences(found, served)
    if not changes:
        return f"api/openapi.json has the served document but not the exporter's formatting. {fix}"
    listed = "\n".join(f"  {change}" for change in changes[:15])
    more = f"\n  ... and {len(changes) - 15} more" if len(changes) > 15 else ""
    return (f"api/openapi.json differs from the OpenAPI document the app serves at /openapi.json "
            f"({len(changes)} difference(s)):\n{listed}{more}\n{fix}")


def differences(stored, served, where: str = "") -> list[str]:
    """Each place where two JSON documents differ, as ``paths['/v1/plans'].post: ...``."""
    if isinstance(stored, dict) and isinstance(served, dict):
        found = []
        for key in sorted(set(stored) | set(served), key=str):
            at = f"{where}.{key}" if re.fullmatch(r"[A-Za-z_][\w-]*", str(key)) else f"{where}[{key!r}]"
            if key not in stored:
                found.append(f"{at.lstrip('.')}: served, not in the file")
            elif key not in served:
                found.append(f"{at.lstrip('.')}: in the file, not served")
            else:
                found += differences(stored[key], served[key], at)
        return found
    at = where.lstrip(".") or "(the document)"
    if isinstance(stored, list) and isinstance(served, list):
        if len(stored) == len(served):
            return [change for index, (a, b) in enumerate(zip(stored, served, strict=True))
                    for change in differences(a, b, f"{where}[{index}]")]
        extra, lacking = [x for x in stored if x not in served], [x for x in served if x not in stored]
        return [f"{at}: the file's list has {len(stored)} items, the server's {len(served)}"
                + (f"; only in the file: {brief(extra)}" if extra else "")
                + (f"; only served: {brief(lacking)}" if lacking else "")]
    if stored == served and type(stored) is type(served):
        return []
    return [f"{at}: the file has {brief(stored)}, the server {brief(served)}"]


def brief(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- api/README.md ---------------------------------------------------------------------------

def operations() -> set[str]:
    """``METHOD /path`` of every operation of the app (api/openapi.json, when it is not stale)."""
    paths = document()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item if method in METHODS}


def readme_sections() -> dict[str, str]:
    """The route sections of api/README.md (headings ``### `METHOD /path```), by route."""
    text = (API / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.MULTILINE)
    sections = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        route = re.fullmatch(r"### `([A-Z]+ /\S*)`", heading.strip())
        if route:
            sections[route.group(1)] = body
    return sections


def test_the_readme_shows_every_route_with_curl_and_python():
    sections = readme_sections()
    documented, served = set(sections), operations()
    assert documented == served, (f"api/README.md lacks a section for {sorted(served - documented)} and has one for "
                                  f"{sorted(documented - served)}, which the app does not serve")
    missing = [route for route, body in sections.items() if "curl " not in body or "client." not in body]
    assert not missing, f"api/README.md: no curl or no Python (httpx client.) example under {missing}"


def test_every_example_is_a_documented_route():
    served = operations()
    templates = {route: re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route.split(" ", 1)[1])) + "$")
                 for route in served}
    for request_file, response_file in example_pairs():
        assert response_file.is_file(), f"{request_file.name} has no {response_file.name}"
        request = json.loads(request_file.read_text(encoding="utf-8"))
        path = re.sub(r"\$\{\w+\}", "x", request["path"].split("?")[0])
        assert any(route.startswith(request["method"] + " ") and pattern.match(path)
                   for route, pattern in templates.items()), f"{request_file.name}: no route {request['method']} {path}"
    assert len(example_pairs()) >= 10


# --- api/examples/ ---------------------------------------------------------------------------

def example_pairs() -> list[tuple[Path, Path]]:
    return [(path, path.with_name(path.name.replace(".request.json", ".response.json")))
            for path in sorted(EXAMPLES.glob("*.request.json"))]


def test_the_examples_replay_against_a_live_server(live):
    variables = {"KEY": live.key()["Authorization"].removeprefix("Bearer ")}
    for request_file, response_file in example_pairs():
        request = json.loads(request_file.read_text(encoding="utf-8"))
        expected = json.loads(response_file.read_text(encoding="utf-8"))
        poll = request.get("poll") or {}
        deadline = time.monotonic() + min(float(poll.get("timeout", 0)), MAX_POLL_SECONDS)
        while True:
            response = send(live.client, substitute(request, variables))
            problems = check(response, expected, variables)
            if not problems or not poll or time.monotonic() > deadline:
                break
            time.sleep(float(poll.get("interval", 0.2)))
        if problems:
            pytest.fail(f"api/examples/{request_file.name}: {request['method']} {request['path']} -> "
                        f"{response.status_code}\n" + "\n".join(f"  {problem}" for problem in problems[:20])
                        + f"\nresponse: {response.text[:1500]}", pytrace=False)


def send(client: httpx.Client, request: dict) -> httpx.Response:
    body = {"json": request["body"]} if "body" in request else {}
    return client.request(request["method"], request["path"], headers=request.get("headers", {}), **body)


def check(response: httpx.Response, expected: dict, variables: dict) -> list[str]:
    """What in ``response`` differs from the example's response; captures its variables first."""
    if response.status_code != expected["status"]:
        return [f"status {response.status_code}, the example has {expected['status']}"]
    body = None
    if "body" in expected or "capture" in expected:
        try:
            body = response.json()
        except ValueError:
            return ["the body is not JSON"]
    for name, dotted in expected.get("capture", {}).items():
        value = body
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            return [f"capture {name}: no text at {dotted}"]
        variables[name] = value
    wanted = substitute({key: value for key, value in expected.items() if key != "capture"}, variables)
    problems = [problem for name, value in wanted.get("headers", {}).items()
                for problem in mismatches(value, response.headers.get(name), f"header {name}")]
    if "body" in wanted:
        problems += mismatches(wanted["body"], body, "body")
    problems += [f"the body lacks {text!r}" for text in wanted.get("text_contains", []) if text not in response.text]
    return problems


def substitute(value, variables: dict):
    """``${NAME}`` in every string of ``value`` replaced by the variable (a KeyError names an unknown one)."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda found: variables[found.group(1)], value)
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    return value


def _timestamp(value) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value) is not None
    except ValueError:
        return False


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


TYPES = {
    "any": lambda value: True,
    "null": lambda value: value is None,
    "string": lambda value: isinstance(value, str),
    "number": _number,
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
    "timestamp": _timestamp,
    "hex32": lambda value: isinstance(value, str) and re.fullmatch("[0-9a-f]{32}", value) is not None,
}


def matches_pattern(pattern: str, value) -> bool:
    """``<a|b>``: a type name of TYPES, ``prefix*`` (a string starting so) or a literal string."""
    for choice in pattern[1:-1].split("|"):
        if choice in TYPES:
            ok = TYPES[choice](value)
        elif choice.endswith("*"):
            ok = isinstance(value, str) and value.startswith(choice[:-1])
        else:
            ok = value == choice
        if ok:
            return True
    return False


def mismatches(expected, actual, where: str) -> list[str]:
    """Where ``actual`` differs from the example's ``expected`` (patterns, open objects, numbers to 1e-9)."""
    if isinstance(expected, str) and len(expected) > 2 and expected[0] == "<" and expected[-1] == ">":
        return [] if matches_pattern(expected, actual) else [f"{where}: {brief(actual)} is not {expected}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {brief(actual)} is not an object"]
        found = [problem for key, value in expected.items() if key != "..."
                 for problem in (mismatches(value, actual[key], f"{where}.{key}") if key in actual
                                 else [f"{where}.{key}: missing"])]
        if expected.get("...") != "...":
            found += [f"{where}.{key}: not in the example ({brief(actual[key])})" for key in actual
                      if key not in expected]
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {brief(actual)} is not a list of {len(expected)}"]
        return [problem for index, (a, b) in enumerate(zip(expected, actual, strict=True))
                for problem in mismatches(a, b, f"{where}[{index}]")]
    if _number(expected) and _number(actual):
        return [] if math.isclose(expected, actual, rel_tol=1e-9) else [f"{where}: {actual!r}, not {expected!r}"]
    if expected == actual and type(expected) is type(actual):
        return []
    return [f"{where}: {brief(actual)}, not {brief(expected)}"]
