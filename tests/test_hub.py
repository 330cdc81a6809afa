"""Model hubs: push/pull/list/show, integrity and path-safety refusals, concurrency, hf-hub offline.

Nothing here contacts a real hub: the local hub is a temp directory and the Hugging Face
backend talks to a small HTTP server on 127.0.0.1 that answers the requests huggingface_hub
makes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import cv2
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

import ganzoo
import ganzoo.api
from ganzoo import cache_entries, caches, hub
from ganzoo.cli import build_app
from ganzoo.errors import CheckpointError, GanzooError
from ganzoo.locations import is_location
from ganzoo.manifest import MAX_MANIFEST_BYTES, verify_snapshot
from ganzoo.plugins import registry

PUSHED_FILES = {"config.json", "model.safetensors", "README.md", "samples.png", "manifest.json"}
pytestmark = [pytest.mark.filterwarnings("ignore:no license given"), pytest.mark.filterwarnings("ignore:no memorization audit given")]
METRICS = {"fid": {"value": 41.25, "samples": 500}, "kid": 0.031}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained run (1 step on synthetic phantoms) shared by every test here."""
    root = tmp_path_factory.mktemp("hub_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(root / "home"))
        ganzoo.train({"arch": "dcgan", "images": 32, "steps": 1, "batch_size": 16, "out": str(root / "run")})
    return root / "run"


@pytest.fixture(scope="module")
def template_hub(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hub holding `model@1`, pushed once; tests that tamper with a hub get a copy of it."""
    root = tmp_path_factory.mktemp("template_hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(root / "home"))
        hub.push(run_dir, "model", f"local-dir:{root / 'hub'}", license="cc-by-nc-4.0", metrics=METRICS)
    return root / "hub"


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def pushed(template_hub: Path, hub_dir: Path) -> Path:
    """A fresh copy of the template hub at `hub_dir`; returns the `model/1` version directory."""
    shutil.copytree(template_hub, hub_dir, symlinks=True)
    for path in hub_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return hub_dir / "model" / "1"


@pytest.fixture
def hub_uri(hub_dir: Path) -> str:
    return f"local-dir:{hub_dir}"


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_plugin_registers_both_backends() -> None:
    hubs = registry("hubs")
    assert hubs.list() == ["hf-hub", "local-dir"]
    assert {hubs.entry(name).plugin for name in hubs.list()} == {"hubs"}


def test_push_pull_round_trip_gives_identical_samples(run_dir: Path, hub_dir: Path, hub_uri: str) -> None:
    ref = hub.push(run_dir, "chest-dcgan", hub_uri, license="cc-by-nc-4.0")
    assert (ref.name, ref.version) == ("chest-dcgan", "1")
    assert ref.location == f"local-dir:{hub_dir / 'chest-dcgan@1'}"
    version_dir = hub_dir / "chest-dcgan" / "1"
    assert {p.name for p in version_dir.iterdir()} == PUSHED_FILES  # no trainer state
    with safe_open(str(version_dir / "model.safetensors"), framework="pt") as f:
        assert {key.split(".")[0] for key in f.keys()} == {"generator"}
    config = json.loads((version_dir / "config.json").read_text())
    assert config["components"] == ["generator"]
    assert config["training"]["out"] is None and config["dataset"]["path"] is None  # no local paths leak

    pulled = hub.pull("chest-dcgan", hub_uri)
    assert {p.name for p in pulled.iterdir()} == PUSHED_FILES
    assert pulled.is_relative_to(Path(os.environ["GANZOO_HOME"]))
    original = ganzoo.load(str(run_dir)).sample(8, seed=11)
    assert torch.equal(ganzoo.load(str(pulled)).sample(8, seed=11), original)
    assert torch.equal(hub.load(ref.location).sample(8, seed=11), original)
    assert hub.pull(ref.location) == pulled  # the same verified cache entry


def test_versions_count_up_latest_wins_and_are_immutable(run_dir: Path, hub_dir: Path, hub_uri: str) -> None:
    assert hub.push(run_dir, "m", hub_uri).version == "1"
    before = (hub_dir / "m" / "1" / "manifest.json").read_bytes()
    assert hub.push(run_dir, "m", hub_uri).version == "2"
    assert hub.pull("m", hub_uri).name == "2"
    with pytest.raises(GanzooError, match=r"m@1 already exists .*immutable"):
        hub.push(run_dir, "m@1", hub_uri)
    assert (hub_dir / "m" / "1" / "manifest.json").read_bytes() == before
    assert hub.push(run_dir, "m@baseline", hub_uri).version == "baseline"
    assert hub.pull("m", hub_uri).name == "baseline"  # latest = most recently published
    assert hub.pull("m@1", hub_uri).name == "1"
    assert hub.push(run_dir, "m", hub_uri).version == "3"
    assert [row.version for row in hub.list_models(hub_uri)] == ["1", "2", "baseline", "3"]
    assert not [p for p in (hub_dir / "m").iterdir() if p.name.startswith(".")]


def test_default_hub_and_hub_scheme(run_dir: Path, ganzoo_home: Path) -> None:
    ref = hub.push(run_dir, "home-model")
    assert ref.location == "hub:home-model@1"
    assert (ganzoo_home / "hub" / "home-model" / "1" / "manifest.json").is_file()
    assert hub.resolve_checkpoint("hub:home-model").name == "1"
    assert not is_location(Path("hub:home-model"))  # a Path is a path
    assert not is_location("runs/a:b")
    with pytest.raises(GanzooError, match="unknown hub scheme 's3'; known: hub, hf-hub, local-dir"):
        hub.resolve_checkpoint("s3:bucket/model")
    with pytest.raises(GanzooError, match="is not a hub URI; write local-dir:"):
        hub.pull("home-model", hub="/some/dir")


def test_include_discriminator_and_ema(run_dir: Path, hub_uri: str) -> None:
    hub.push(run_dir, "full", hub_uri, include_discriminator=True)
    pulled = hub.pull("full", hub_uri)
    assert json.loads((pulled / "config.json").read_text())["components"] == ["generator", "discriminator"]
    original, loaded = ganzoo.load(str(run_dir)), ganzoo.load(str(pulled))
    for key, value in original.discriminator.state_dict().items():
        assert torch.equal(loaded.discriminator.state_dict()[key], value)


def test_model_card_and_sample_grid(pushed: Path, hub_uri: str) -> None:
    info = hub.show("model", hub_uri)
    meta = info.front_matter
    for key in ("architecture", "resolution", "channels", "dataset", "dataset_fingerprint", "image_count", "epochs"):
        assert meta[key] is not None, key
    assert meta["library_name"] == "ganzoo"
    assert meta["license"] == "cc-by-nc-4.0"
    assert "not for clinical diagnosis" in meta["intended_use"]
    assert info.metrics == {"fid": {"value": 41.25, "samples": 500}, "kid": {"value": 0.031}}
    assert "![16 samples, seed 0](samples.png)" in info.card
    assert 'ganzoo.load("' in info.card
    grid = cv2.imread(str(hub.pull("model", hub_uri) / "samples.png"), cv2.IMREAD_UNCHANGED)
    assert grid.shape[:2] == (2 + 4 * (64 + 2), 2 + 4 * (64 + 2))


def test_cli_push_list_show_pull(run_dir: Path, hub_dir: Path, hub_uri: str, tmp_path: Path) -> None:
    runner = CliRunner()
    app = build_app()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"fid": {"value": 12.5, "samples": 2000}}))
    result = runner.invoke(app, ["hub", "push", str(run_dir), "cxr", "--hub", hub_uri, "--license", "mit", "--metrics", str(metrics)])
    assert result.exit_code == 0, result.output
    assert f"local-dir:{hub_dir / 'cxr@1'}" in result.stdout
    result = runner.invoke(app, ["hub", "list", "--hub", hub_uri])
    assert result.exit_code == 0 and "cxr" in result.stdout and " 1 " in result.stdout
    result = runner.invoke(app, ["hub", "show", "cxr", "--hub", hub_uri])
    assert result.exit_code == 0, result.output
    assert "license: mit" in result.stdout and "fid" in result.stdout and "2000" in result.stdout
    assert "Research use only" in result.stdout
    result = runner.invoke(app, ["hub", "pull", "cxr@1", "--hub", hub_uri])
    assert result.exit_code == 0 and Path(result.stdout.strip()).is_dir()
    result = runner.invoke(app, ["hub", "pull", "../cxr", "--hub", hub_uri])
    assert result.exit_code == 2 and "invalid model name" in result.output


class MeanBrightness(ganzoo.api.Metric):
    """A cheap metric for the evaluate -> push round trip: |mean of fake - mean of real| / 255."""

    def compute(self, fake: torch.Tensor, real: Any, context: Any) -> dict[str, Any]:
        gap = abs(fake.float().mean() - real.images.float().mean()).item() / 255
        return {"value": gap, "std": 0.0, "features": {"space": "pixels"}}


class MeanBrightnessPlugin:
    @staticmethod
    @ganzoo.api.hookimpl
    def ganzoo_register_metrics(register: Any) -> None:
        register("mean-brightness", MeanBrightness())


def test_evaluate_json_is_accepted_by_push(run_dir: Path, hub_uri: str, tmp_path: Path) -> None:
    """`ganzoo evaluate --json` wrote a report that `hub push --metrics` refused."""
    runner, app = CliRunner(), build_app()
    ganzoo.api.register_plugin(MeanBrightnessPlugin, name="mean-brightness-test")
    try:
        report = tmp_path / "eval.json"
        result = runner.invoke(app, ["evaluate", str(run_dir), "--metrics", "mean-brightness", "-n", "8", "--max-real", "16", "--device", "cpu", "--json", str(report)])
        assert result.exit_code == 0, result.output
    finally:
        ganzoo.api.unregister_plugin("mean-brightness-test")
    measured = json.loads(report.read_text())["metrics"]["mean-brightness"]
    assert (measured["n_fake"], measured["n_real"]) == (8, 16)
    result = runner.invoke(app, ["hub", "push", str(run_dir), "evaluated", "--hub", hub_uri, "--license", "mit", "--metrics", str(report)])
    assert result.exit_code == 0, result.output
    info = hub.show("evaluated", hub_uri)
    assert info.metrics == {"mean-brightness": {"value": measured["value"], "std": 0.0, "n_fake": 8, "n_real": 16}}  # no features dict
    assert f"| mean-brightness | {measured['value']:.6g} | 8 | 16 |" in info.card
    result = runner.invoke(app, ["hub", "show", "evaluated", "--hub", hub_uri])
    assert result.exit_code == 0 and "mean-brightness" in result.stdout


def test_cli_hub_error_is_one_line_with_exit_code_2() -> None:
    result = CliRunner().invoke(build_app(), ["hub", "pull", "hub:nope"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'nope' not found" in lines[0], result.output
    assert "Traceback" not in result.output


def test_load_and_generate_accept_hub_locations(run_dir: Path, tmp_path: Path) -> None:
    hub.push(run_dir, "gen")
    original = ganzoo.load(str(run_dir)).sample(4, seed=2)
    assert torch.equal(ganzoo.load("hub:gen").sample(4, seed=2), original)
    result = CliRunner().invoke(build_app(), ["generate", "hub:gen@1", "-n", "3", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_tampered_file_is_refused_naming_it(pushed: Path, hub_uri: str) -> None:
    weights = pushed / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match the manifest"):
        hub.pull("model", hub_uri)
    assert not list((Path(os.environ["GANZOO_HOME"]) / "cache" / "hub-pulls").rglob("model.safetensors"))


def test_tampered_cache_is_pulled_again(pushed: Path, hub_uri: str) -> None:
    cached = hub.pull("model", hub_uri)
    (cached / "config.json").write_text("{}")
    with pytest.warns(UserWarning, match="failed verification"):
        again = hub.pull("model", hub_uri)
    assert again == cached and verify_snapshot(again)


def test_a_pulled_model_is_a_cache_entry_kept_while_this_process_uses_it(pushed: Path, hub_uri: str) -> None:
    pulled = hub.pull("model", hub_uri)
    (entry,) = cache_entries.entries("hub-pulls")
    assert entry.path == pulled and "model@" in entry.description and entry.size > 0
    assert [e.key for e in caches.clear(["hub-pulls"]).in_use] == [entry.key] and pulled.is_dir()
    cache_entries.release_pins()
    assert [e.key for e in caches.clear(["hub-pulls"]).removed] == [entry.key] and not pulled.exists()
    assert hub.pull("model", hub_uri) == pulled and verify_snapshot(pulled)


@pytest.mark.parametrize("bad", ["model.bin", "weights.pt", "../config.json", "sub/x.json"])
def test_manifest_listing_a_refused_file(pushed: Path, hub_uri: str, bad: str) -> None:
    manifest_path = pushed / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][bad] = {"sha256": "0" * 64, "size": 3}
    manifest_path.write_text(json.dumps(manifest))
    if "/" not in bad:
        (pushed / bad).write_bytes(b"bad")
    with pytest.raises(CheckpointError, match=f"lists '{bad}'"):
        hub.pull("model", hub_uri)


@pytest.mark.parametrize("name", ["../evil", "..", "/etc/evil", "a/../../b", "a\\b", "", "x@", "-x", "nested/name"])
def test_bad_names_are_refused_and_nothing_is_written(run_dir: Path, tmp_path: Path, hub_uri: str, name: str) -> None:
    before = tree(tmp_path)
    with pytest.raises(GanzooError, match="invalid (model name|version)"):
        hub.push(run_dir, name, hub_uri)
    with pytest.raises(GanzooError, match="invalid (model name|version)"):
        hub.pull(name, hub_uri)
    assert tree(tmp_path) == before


def test_symlinks_out_of_the_hub_are_refused(run_dir: Path, pushed: Path, hub_dir: Path, hub_uri: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(pushed.parent, outside)
    (hub_dir / "evil").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    with pytest.raises(GanzooError, match="is a symlink"):
        hub.pull("evil", hub_uri)
    with pytest.raises(GanzooError, match="is a symlink"):
        hub.push(run_dir, "evil", hub_uri)
    assert tree(outside) == before
    assert "evil" not in {row.name for row in hub.list_models(hub_uri)}

    # A file symlink is refused even when its target has the right bytes.
    weights = pushed / "model.safetensors"
    weights.unlink()
    weights.symlink_to(outside / "1" / "model.safetensors")
    with pytest.raises(CheckpointError, match="is a symlink"):
        hub.pull("model", hub_uri)


def test_header_checked_before_loading(pushed: Path, hub_uri: str) -> None:
    bogus = (2**40).to_bytes(8, "little") + b"{}"
    (pushed / "model.safetensors").write_bytes(bogus)
    manifest_path = pushed / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.safetensors"] = {"sha256": hashlib.sha256(bogus).hexdigest(), "size": len(bogus)}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="bogus safetensors header length"):
        hub.pull("model", hub_uri)


CONCURRENT_PUSHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ganzoo import cache_entries, caches, hub
    from ganzoo.errors import GanzooError

    run, uri, own, ready, peer = sys.argv[1:6]
    Path(ready).touch()
    while not Path(peer).exists():
        time.sleep(0.01)
    hub.push(run, own, uri)
    for _ in range(2):
        hub.push(run, "shared", uri)
    try:
        hub.push(run, "race@final", uri)
        print("won")
    except GanzooError as error:
        print("lost:", error)
    """
)


def test_concurrent_pushes_from_two_processes(run_dir: Path, hub_dir: Path, hub_uri: str, tmp_path: Path) -> None:
    script = tmp_path / "pusher.py"
    script.write_text(CONCURRENT_PUSHER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(run_dir), hub_uri, own, str(tmp_path / f"ready-{me}"), str(tmp_path / f"ready-{peer}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        for own, me, peer in (("alpha", "a", "b"), ("beta", "b", "a"))
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    results = sorted(out.strip().splitlines()[-1].split(":")[0] for out, _ in outputs)
    assert results == ["lost", "won"]
    assert any("immutable" in out for out, _ in outputs)
    rows = hub.list_models(hub_uri)
    assert sorted((r.name, r.version) for r in rows if r.name == "shared") == [("shared", str(v)) for v in range(1, 5)]
    assert {r.name for r in rows} == {"alpha", "beta", "shared", "race"}
    for row in rows:
        verify_snapshot(hub_dir / row.name / row.version, row.name, row.version)
    assert not [p for p in hub_dir.rglob(".*") if p.name != ".lock"]


# -- the Hugging Face backend against a local fake Hub ------------------------------------


ENDLESS_CAP = 256 << 20


class FakeHub(ThreadingHTTPServer):
    """Answers the Hub API calls huggingface_hub makes to push (create_repo, refs, preupload,
    commit, tag) and pull (HEAD/GET resolve), from memory."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        # Files served as their bytes then zeros without end (no Content-Length), and how much
        # of each was sent before the client hung up.
        self.endless: set[str] = set()
        self.sent: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add_commit(self, repo: str, files: dict[str, bytes], message: str = "") -> str:
        state = self.repos[repo]
        parent = state["refs"].get("main")
        tree = dict(state["commits"][parent]) if parent else {}
        tree.update(files)
        sha = hashlib.sha1(f"{repo}{len(state['commits'])}{message}".encode()).hexdigest()
        state["commits"][sha] = tree
        state["refs"]["main"] = sha
        return sha


class FakeHubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, json_body: Any = None) -> None:
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream_endlessly(self, filename: str, data: bytes, headers: dict[str, str]) -> None:
        """`data`, then zeros until the client hangs up (or ENDLESS_CAP bytes: a client that never stops)."""
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        sent, block = 0, data + bytes(1 << 16)
        try:
            while sent < ENDLESS_CAP:
                self.wfile.write(block)
                sent += len(block)
                block = bytes(1 << 16)
        except OSError:  # the client hung up
            pass
        self.server.sent[filename] = sent
        self.close_connection = True

    def _error(self, status: int, code: str) -> None:
        self._reply(status, headers={"X-Error-Code": code, "X-Error-Message": code}, json_body={"error": code})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and parts[-1] == "refs":
            repo = self.server.repos.get("/".join(parts[2:-1]))
            if repo is None:
                return self._error(404, "RepoNotFound")
            tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in repo["tags"].items()]
            main = [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo["refs"]["main"]}] if repo["refs"] else []
            return self._reply(200, json_body={"branches": main, "converts": [], "tags": tags, "pullRequests": []})
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self.server.repos.get("/".join(parts[:2]))
            if repo is None:
                return self._error(404, "RepoNotFound")
            revision, filename = parts[3], "/".join(parts[4:])
            commit = repo["tags"].get(revision) or repo["refs"].get(revision) or (revision if revision in repo["commits"] else None)
            if commit is None:
                return self._error(404, "RevisionNotFound")
            data = repo["commits"][commit].get(filename)
            if data is None:
                return self._reply(404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
            if filename in self.server.endless and self.command == "GET":
                return self._stream_endlessly(filename, data, headers)
            return self._reply(200, data, headers)
        self._error(404, "NotFound")

    def do_POST(self) -> None:
        self.server.requests.append(f"POST {self.path}")
        body = self._body()
        parts = self.path.split("?")[0].strip("/").split("/")
        with self.server.lock:
            if parts == ["api", "repos", "create"]:
                payload = json.loads(body)
                repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                if repo in self.server.repos:
                    body = {"error": "You already created this model repo", "url": f"{self.server.endpoint}/{repo}"}
                    return self._reply(409, headers={"X-Error-Code": "RepoExists"}, json_body=body)
                self.server.repos[repo] = {"commits": {}, "refs": {}, "tags": {}, "private": payload.get("visibility") == "private" or payload.get("private") is True}
                return self._reply(200, json_body={"url": f"{self.server.endpoint}/{repo}", "name": repo})
            if parts == ["api", "validate-yaml"]:
                return self._reply(200, json_body={"errors": [], "warnings": []})
            repo_id = "/".join(parts[2:4])
            repo = self.server.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound")
            if parts[4] == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in json.loads(body)["files"]]
                return self._reply(200, json_body={"files": files})
            if parts[4] == "commit":
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                files = {l["value"]["path"]: base64.b64decode(l["value"]["content"]) for l in lines if l["key"] == "file"}
                summary = next(l["value"]["summary"] for l in lines if l["key"] == "header")
                sha = self.server.add_commit(repo_id, files, summary)
                return self._reply(200, json_body={"commitUrl": f"{self.server.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})
            if parts[4] == "tag":
                tag = json.loads(body)["tag"]
                if tag in repo["tags"]:
                    return self._error(409, "TagExists")
                repo["tags"][tag] = parts[5]
                return self._reply(200, json_body={})
        self._error(404, "NotFound")


@pytest.fixture(scope="module")
def hf_server() -> Iterator[FakeHub]:
    """One server for the module: huggingface_hub may remember the first endpoint it saw."""
    pytest.importorskip("huggingface_hub")
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_hf(hf_server: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    hf_server.repos.clear()
    hf_server.requests.clear()
    monkeypatch.setenv("HF_ENDPOINT", hf_server.endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return hf_server


def test_hf_hub_push_and_pull_against_a_local_server(run_dir: Path, fake_hf: FakeHub) -> None:
    ref = hub.push(run_dir, "hf-hub:lab/chest-dcgan", license="mit")
    assert (ref.version, ref.location) == ("1", "hf-hub:lab/chest-dcgan@1")
    repo = fake_hf.repos["lab/chest-dcgan"]
    assert repo["private"] and set(repo["tags"]) == {"1"}
    assert set(repo["commits"][repo["tags"]["1"]]) == PUSHED_FILES
    assert hub.push(run_dir, "hf-hub:lab/chest-dcgan").version == "2"
    with pytest.raises(GanzooError, match="immutable"):
        hub.push(run_dir, "hf-hub:lab/chest-dcgan@1")

    pulled = hub.pull("hf-hub:lab/chest-dcgan@1")
    assert pulled.name == repo["tags"]["1"]  # cached by commit: one pull, one commit
    assert {p.name for p in pulled.iterdir()} == PUSHED_FILES
    original = ganzoo.load(str(run_dir)).sample(6, seed=4)
    assert torch.equal(ganzoo.load(str(pulled)).sample(6, seed=4), original)
    assert hub.pull("hf-hub:lab/chest-dcgan").name == repo["refs"]["main"]
    assert hub.show("hf-hub:lab/chest-dcgan@1").front_matter["license"] == "mit"
    downloads = [r for r in fake_hf.requests if "/resolve/" in r]
    assert downloads and all(f"/resolve/{repo['tags']['1']}/" in r or "/manifest.json" in r or repo["refs"]["main"] in r for r in downloads)


def test_load_accepts_hf_hub_locations(run_dir: Path, fake_hf: FakeHub) -> None:
    hub.push(run_dir, "hf-hub:lab/loadable")
    original = ganzoo.load(str(run_dir)).sample(3, seed=9)
    assert torch.equal(ganzoo.load("hf-hub:lab/loadable").sample(3, seed=9), original)


def test_hf_hub_refuses_tampered_and_manifestless_repos(run_dir: Path, fake_hf: FakeHub) -> None:
    hub.push(run_dir, "hf-hub:lab/tampered")
    repo = fake_hf.repos["lab/tampered"]
    commit = repo["refs"]["main"]
    repo["commits"][commit]["model.safetensors"] += b"\0"
    with pytest.raises(CheckpointError, match="model.safetensors is .* bytes, the manifest says"):
        hub.pull("hf-hub:lab/tampered")
    repo["commits"][commit]["model.bin"] = b"pickle"
    manifest = json.loads(repo["commits"][commit]["manifest.json"])
    manifest["files"]["model.bin"] = {"sha256": hashlib.sha256(b"pickle").hexdigest(), "size": 6}
    repo["commits"][commit]["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(CheckpointError, match="lists 'model.bin'"):
        hub.pull("hf-hub:lab/tampered")
    assert not any("model.bin" in r for r in fake_hf.requests)

    fake_hf.repos["lab/plain"] = {"commits": {}, "refs": {}, "tags": {}, "private": False}
    fake_hf.add_commit("lab/plain", {"config.json": b"{}", "model.safetensors": b"x"})
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        hub.pull("hf-hub:lab/plain")
    with pytest.raises(GanzooError, match="repository not found"):
        hub.pull("hf-hub:lab/missing")
    with pytest.raises(GanzooError, match="ORG/NAME"):
        hub.pull("hf-hub:no-org")


def sent_before_hang_up(fake_hf: FakeHub, filename: str) -> int:
    """Bytes of `filename` the server wrote before the client closed the connection."""
    for _ in range(500):
        if filename in fake_hf.sent:
            return fake_hf.sent[filename]
        time.sleep(0.01)
    raise AssertionError(f"the server is still sending {filename}")


def test_hf_hub_download_stops_at_the_manifest_size(run_dir: Path, fake_hf: FakeHub, ganzoo_home: Path) -> None:
    hub.push(run_dir, "hf-hub:lab/bloated")
    commit = fake_hf.repos["lab/bloated"]["refs"]["main"]
    declared = json.loads(fake_hf.repos["lab/bloated"]["commits"][commit]["manifest.json"])["files"]["model.safetensors"]["size"]
    fake_hf.endless.add("model.safetensors")
    with pytest.raises(CheckpointError, match=rf"model.safetensors is over {declared} bytes, the manifest says {declared}; refused"):
        hub.pull("hf-hub:lab/bloated")
    assert sent_before_hang_up(fake_hf, "model.safetensors") < declared + (32 << 20)  # stopped, not read to the end
    assert not [p for p in (ganzoo_home / "cache").rglob("*") if p.is_file()]  # nothing stays in the cache

    fake_hf.endless.add("manifest.json")
    with pytest.raises(CheckpointError, match=rf"manifest.json is over {MAX_MANIFEST_BYTES} bytes; refused"):
        hub.pull("hf-hub:lab/bloated")
    with pytest.raises(CheckpointError, match="manifest.json is over"):
        hub.show("hf-hub:lab/bloated")
    assert sent_before_hang_up(fake_hf, "manifest.json") < MAX_MANIFEST_BYTES + (32 << 20)
    assert not [p for p in (ganzoo_home / "cache").rglob("*") if p.is_file()]


def test_hf_hub_names_the_extra_when_huggingface_hub_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(GanzooError, match=r"pip install 'ganzoo\[hub\]'"):
        hub.pull("hf-hub:lab/model")
