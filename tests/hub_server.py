"""A small Hub-compatible HTTP server for tests, and the `hub_server` fixture that points `huggingface_hub` at it.

The real `huggingface_hub` client (2.4, with Xet disabled) talks to it through `HF_ENDPOINT`. It answers what the
client calls for:

- `create_repo`               POST /api/repos/create
- `create_branch`             POST /api/{type}s/{ns}/{name}/branch/{branch}
- `upload_folder`             POST /api/validate-yaml (README.md front matter)
                              POST /api/{type}s/{ns}/{name}/preupload/{rev}     (regular or LFS, per file)
                              POST /[{type}s/]{ns}/{name}.git/info/lfs/objects/batch  (LFS files only)
                              PUT  /_lfs/{type}/{ns}/{name}/{oid}               (the "basic" LFS transfer)
                              POST /_lfs/{type}/{ns}/{name}/verify
                              POST /api/{type}s/{ns}/{name}/commit/{rev}        (ndjson)
- `repo_info` / `model_info` / `dataset_info`   GET /api/{type}s/{ns}/{name}[/revision/{rev}]
- `list_repo_files` / `list_repo_tree`          GET /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]
- `hf_hub_download` / `snapshot_download`       HEAD and GET /[{type}s/]{ns}/{name}/resolve/{rev}/{path}
- `whoami`                    GET /api/whoami-v2
- the client's agent-harness lookup, made when it builds its first User-Agent: GET /api/agent-harnesses

Storage is a temporary folder of content-addressed blobs (by sha256); each repo has branches pointing at commits, and a
commit maps paths to blobs, so revisions, parent commits and unchanged-file detection behave like the Hub's. Files are
stored through the regular or the LFS path as the Hub would decide (the repo's `.gitattributes`, size, binary content),
and an LFS upload is checked against its sha256 and size. Every request is recorded (`server.requests`); requests no
route answers are also collected in `server.unhandled`, so a test can assert the server covered everything the client
did. Only 127.0.0.1 is listened on, on an ephemeral port.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml


FAKE_TOKEN = "hf_spachftestTOKENnotarealone"
USER = "spac-tester"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# What a new repo's first commit holds, as on the Hub: a .gitattributes routing binary formats through LFS.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.msgpack", "*.gguf", "*.npy", "*.npz",
        "*.arrow", "*.parquet", "*.zip", "*.gz", "*.tar", "*.zst", "*.model", "*tfevents*",
    )
)  # fmt: skip
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub sends files from 10 MB up through LFS whatever their name


@dataclass(frozen=True)
class FileEntry:
    sha256: str  # content address in the blob store (and the LFS oid)
    size: int
    lfs: bool
    git_oid: str  # the git blob id: of the content for a regular file, of the LFS pointer for an LFS file

    @classmethod
    def regular(cls, data: bytes, sha256: str) -> FileEntry:
        return cls(sha256=sha256, size=len(data), lfs=False, git_oid=_git_blob_oid(data))

    @classmethod
    def large(cls, sha256: str, size: int) -> FileEntry:
        return cls(sha256=sha256, size=size, lfs=True, git_oid=_git_blob_oid(_lfs_pointer(sha256, size)))

    @property
    def pointer_size(self) -> int:
        return len(_lfs_pointer(self.sha256, self.size))


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, FileEntry]
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs_objects: dict[str, int] = field(default_factory=dict)  # sha256 -> size, uploaded and checked

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


@dataclass
class RecordedRequest:
    method: str
    path: str
    status: int
    authorized: bool


class HubError(Exception):
    """An error answer: status, message and the `X-Error-Code` that `huggingface_hub` maps to its exceptions."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = {"error": message, **(body or {})}


class HubServer:
    """Repos, blobs and the request log, served by a `ThreadingHTTPServer` on 127.0.0.1 in a daemon thread."""

    def __init__(self, root: str | Path, tokens: dict[str, str] | None = None):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens if tokens is not None else {FAKE_TOKEN: USER})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        # A short poll interval: `shutdown()` waits for the loop to notice, and teardown should not take 0.5 s.
        serve = lambda: self._httpd.serve_forever(poll_interval=0.05)  # noqa: E731
        self._thread = threading.Thread(target=serve, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- helpers for tests ---------------------------------------------------------------------------------------

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The content of every file of `repo_id` at `revision`, as stored."""
        commit = self.repo(repo_id, repo_type).resolve(revision)
        return {path: self.read_blob(entry.sha256) for path, entry in commit.files.items()}

    def lfs_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> set[str]:
        commit = self.repo(repo_id, repo_type).resolve(revision)
        return {path for path, entry in commit.files.items() if entry.lfs}

    def paths(self, method: str | None = None) -> list[str]:
        """The recorded request paths (query strings dropped), optionally of one HTTP method."""
        return [r.path.split("?")[0] for r in self.requests if method is None or r.method == method]

    # -- storage -------------------------------------------------------------------------------------------------

    def write_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / sha256
        if not path.exists():
            path.write_bytes(data)
        return sha256

    def read_blob(self, sha256: str) -> bytes:
        return (self.root / "blobs" / sha256).read_bytes()

    def regular_entry(self, data: bytes) -> FileEntry:
        return FileEntry.regular(data, self.write_blob(data))

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        now = _now()
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=now)
        files = {".gitattributes": self.regular_entry(DEFAULT_GITATTRIBUTES.encode())}
        self.add_commit(repo, "main", "initial commit", files)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def add_commit(self, repo: Repo, branch: str, message: str, files: dict[str, FileEntry]) -> Commit:
        parent = repo.branches.get(branch)
        listing = sorted((path, entry.sha256, entry.lfs) for path, entry in files.items())
        seed = json.dumps([parent, message, listing, len(repo.commits)]).encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), parent, message, files, _now())
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects; every answer has a length
    server_version = "spac-hf-test-hub"

    # http.server calls do_<METHOD>
    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def log_message(self, format, *args):  # keep pytest output clean; the request log is `server.requests`
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    @property
    def base(self) -> str:
        return self.hub.url

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        body = self._read_body()  # always, so the connection stays in step even when answering with an error
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        parts = [unquote(part) for part in url.path.split("/")[1:]]  # split first: revisions may hold "%2F"
        status, self.user = 500, None
        try:
            self.user = self._authenticate()
            with self.hub.lock:
                status = self._dispatch(parts, body)
        except HubError as err:
            status = err.status
            self._send_error(err)
            if err.status == 404 and err.code is None:
                self.hub.unhandled.append(f"{self.command} {self.path}")
        except Exception as err:  # a bug in this server: answer 500, and re-raise so the traceback reaches stderr
            status = 500
            self._send_json({"error": f"test hub server error: {err!r}"}, status=500)
            raise
        finally:
            with self.hub.lock:
                self.hub.requests.append(RecordedRequest(self.command, self.path, status, self.user is not None))

    def _read_body(self) -> bytes:
        if self.command in ("GET", "HEAD"):
            return b""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authenticate(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> int:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})
        return status

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_json(err.body, status=err.status, headers=headers)

    # -- routing -------------------------------------------------------------------------------------------------

    def _dispatch(self, parts: list[str], body: bytes) -> int:
        method = self.command
        if parts[:1] == ["api"]:
            if parts == ["api", "repos", "create"] and method == "POST":
                return self._create_repo(_json(body))
            if parts == ["api", "validate-yaml"] and method == "POST":
                return self._validate_yaml(_json(body))
            if parts == ["api", "whoami-v2"] and method == "GET":
                return self._whoami()
            if parts == ["api", "agent-harnesses"] and method == "GET":
                return self._send_json({"standardEnvVars": [], "harnesses": {}})
            if len(parts) >= 4 and parts[1] in REPO_TYPES:
                repo_type, repo_id, rest = REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
                return self._repo_api(method, repo_type, repo_id, rest, body)
        elif parts[:1] == ["_lfs"] and len(parts) == 5:
            repo = self._get_repo(parts[1], f"{parts[2]}/{parts[3]}", write=parts[4] == "verify")
            if parts[4] == "verify" and method == "POST":
                return self._lfs_verify(repo, _json(body))
            if method == "PUT":
                return self._lfs_put(repo, parts[4], body)
        else:
            repo_type = "model"
            if parts[:1] in (["datasets"], ["spaces"]):
                repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
            if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
                if method == "POST":
                    return self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}", _json(body))
            if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
        raise HubError(404, f"No test-server route for {method} {self.path}")

    def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> int:
        action = rest[0] if rest else None
        if method == "GET" and action is None:
            return self._repo_info(repo_type, repo_id, "main")
        if method == "GET" and action == "revision" and len(rest) == 2:
            return self._repo_info(repo_type, repo_id, rest[1])
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo_type, repo_id, rest[1], _json(body))
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit(repo_type, repo_id, rest[1], body)
        if method == "POST" and action == "branch" and len(rest) == 2:
            return self._create_branch(repo_type, repo_id, rest[1], _json(body))
        raise HubError(404, f"No test-server route for {method} {self.path}")

    # -- repos ---------------------------------------------------------------------------------------------------

    def _require_user(self) -> str:
        if self.user is None:
            raise HubError(401, "You must be authenticated to do this (no token was sent)")
        return self.user

    def _get_repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        # A private repo is invisible without rights, as on the Hub; a write needs the namespace's owner.
        visible = repo is not None and (not repo.private or self.user == repo_id.split("/")[0])
        if not visible:
            raise HubError(404, f"Repository {repo_type} {repo_id} not found", code="RepoNotFound")
        if write and self._require_user() != repo_id.split("/")[0]:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def _create_repo(self, payload: dict) -> int:
        user = self._require_user()
        repo_type = payload.get("type") or "model"
        name, namespace = payload.get("name"), payload.get("organization") or user
        if repo_type not in URL_PREFIXES or not name or "/" in name:
            raise HubError(400, f"Invalid repo creation payload: {payload}")
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        repo_id = f"{namespace}/{name}"
        existing = self.hub.repos.get((repo_type, repo_id))
        if existing is not None:
            # `create_repo(exist_ok=True)` reads the repo URL from the body of this 409, as the Hub sends it.
            url = self._repo_url(existing)
            raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
        repo = self.hub.create_repo(repo_type, repo_id, private=payload.get("visibility") == "private")
        return self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _create_branch(self, repo_type: str, repo_id: str, branch: str, payload: dict) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._get_commit(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = start.oid
        return self._send_json({})

    def _whoami(self) -> int:
        user = self._require_user()
        return self._send_json(
            {"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"accessToken": {"role": "write"}}}
        )

    def _validate_yaml(self, payload: dict) -> int:
        # Parse the front matter as the Hub would reject it: malformed YAML or a non-mapping is an error.
        content = payload.get("content", "")
        if not content.startswith("---"):
            return self._send_json({"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        try:
            metadata = yaml.safe_load(content.split("---", 2)[1])
        except (yaml.YAMLError, IndexError) as err:
            return self._send_json({"errors": [{"message": f"Invalid YAML: {err}"}]}, status=400)
        if not isinstance(metadata, dict):
            return self._send_json({"errors": [{"message": "YAML metadata must be a mapping"}]}, status=400)
        return self._send_json({"errors": [], "warnings": []})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        with_blobs = self.query.get("blobs", "").lower() == "true"
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry.size, blobId=entry.git_oid)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        readme = commit.files.get("README.md")
        card = _front_matter(self.hub.read_blob(readme.sha256)) if readme is not None else {}
        info = {
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "cardData": card,
            "siblings": siblings,
        }
        if repo_type == "model":
            info.update(modelId=repo_id, library_name=card.get("library_name"), pipeline_tag=card.get("pipeline_tag"))
        return self._send_json(info)

    def _tree(self, repo_type: str, repo_id: str, revision: str, folder: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        recursive = self.query.get("recursive", "").lower() == "true"
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        inside = [path for path in commit.files if path.startswith(prefix)]
        if prefix and not inside:
            raise HubError(404, f"{folder} does not exist on {revision}", code="EntryNotFound")
        entries: dict[str, dict] = {}
        for path in sorted(inside):
            relative = path[len(prefix) :].split("/")
            # The folders between `folder` and the file, then the file itself if it is within reach.
            for depth in range(1, len(relative)):
                directory = prefix + "/".join(relative[:depth])
                if recursive or depth == 1:
                    oid = hashlib.sha1(directory.encode()).hexdigest()
                    entries.setdefault(directory, {"type": "directory", "oid": oid, "size": 0, "path": directory})
            if recursive or len(relative) == 1:
                entries[path] = _tree_file(path, commit.files[path])
        return self._send_json(list(entries.values()))

    # -- uploads -------------------------------------------------------------------------------------------------

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if self.query.get("create_pr"):
            raise HubError(400, "The test hub server does not do pull requests")
        commit = self._get_commit(repo, revision)
        lfs_patterns = _lfs_patterns(self.hub, commit)
        files = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            use_lfs = size >= LFS_THRESHOLD or b"\x00" in sample or _matches(path, lfs_patterns)
            existing = commit.files.get(path)
            # The oid the client compares with its own (sha256 for LFS, git blob id otherwise) to skip unchanged files.
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
            mode = "lfs" if use_lfs else "regular"
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._send_json({"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if payload.get("operation") != "upload" or payload.get("hash_algo", "sha256") != "sha256":
            raise HubError(400, f"Only sha256 uploads are supported, got {payload}")
        href = f"{self.base}/_lfs/{repo_type}/{repo_id}"
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if repo.lfs_objects.get(oid) != size:  # already stored: no "actions", the client skips the upload
                answer["actions"] = {
                    "upload": {"href": f"{href}/{oid}", "header": {}},
                    "verify": {"href": f"{href}/verify", "header": {}},
                }
            objects.append(answer)
        headers = {"Content-Type": "application/vnd.git-lfs+json"}
        return self._send_json({"transfer": "basic", "objects": objects}, headers=headers)

    def _lfs_put(self, repo: Repo, oid: str, body: bytes) -> int:
        # The client sends no token here (the Hub hands out pre-signed storage URLs): the oid is the credential.
        actual = hashlib.sha256(body).hexdigest()
        if actual != oid:
            raise HubError(400, f"LFS upload content does not match its oid: expected {oid}, got {actual}")
        self.hub.write_blob(body)
        repo.lfs_objects[oid] = len(body)
        self._send(200, b"", {"ETag": f'"{oid}"'})
        return 200

    def _lfs_verify(self, repo: Repo, payload: dict) -> int:
        oid, size = payload.get("oid"), payload.get("size")
        if repo.lfs_objects.get(oid) != size:
            raise HubError(404, f"LFS object {oid} of size {size} was not uploaded", code="EntryNotFound")
        return self._send_json({"success": True})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if self.query.get("create_pr"):
            raise HubError(400, "The test hub server does not do pull requests")
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", code="RevisionNotFound")
        head = self._get_commit(repo, revision)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit starts with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head.oid):
            raise HubError(412, f"A commit has happened since {header['parentCommit']}: {revision} is at {head.oid}")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = _clean_path(value["path"])
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')}")
                files[path] = self.hub.regular_entry(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                oid = value["oid"]
                if value.get("algo", "sha256") != "sha256" or oid not in repo.lfs_objects:
                    raise HubError(400, f"LFS object {oid} for {path} was never uploaded to {repo_id}")
                files[path] = FileEntry.large(oid, repo.lfs_objects[oid])
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
            elif key == "deletedFolder":
                folder = path.rstrip("/") + "/"
                files = {p: e for p, e in files.items() if not p.startswith(folder)}
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        commit = self.hub.add_commit(repo, revision, header.get("summary", ""), files)
        url = f"{self._repo_url(repo)}/commit/{commit.oid}"
        return self._send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    # -- downloads -----------------------------------------------------------------------------------------------

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            # The commit header lets the client remember, per commit, that the file does not exist.
            headers = {"X-Repo-Commit": commit.oid}
            raise HubError(404, f"{path} does not exist on {revision}", code="EntryNotFound", headers=headers)
        data = self.hub.read_blob(entry.sha256)
        etag = entry.sha256 if entry.lfs else entry.git_oid
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.lfs:  # on the Hub these come with the redirect to storage; the client reads them first
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        status, start = 200, _range_start(self.headers.get("Range"), len(data))
        if start:
            status, data = 206, data[start:]
            headers["Content-Range"] = f"bytes {start}-{entry.size - 1}/{entry.size}"
        self._send(status, data, headers)
        return status


# --------------------------------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------------------------------


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _json(body: bytes) -> dict:
    try:
        value = json.loads(body or b"{}")
    except json.JSONDecodeError as err:
        raise HubError(400, f"Malformed JSON body: {err}") from err
    if not isinstance(value, dict):
        raise HubError(400, "Expected a JSON object")
    return value


def _clean_path(path: str) -> str:
    path = path.lstrip("/")
    if not path or any(part in ("", ".", "..") for part in path.rstrip("/").split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _front_matter(readme: bytes) -> dict:
    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def _lfs_patterns(hub: HubServer, commit: Commit) -> list[str]:
    entry = commit.files.get(".gitattributes")
    if entry is None:
        return []
    lines = hub.read_blob(entry.sha256).decode(errors="replace").splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]


def _matches(path: str, patterns: list[str]) -> bool:
    # git applies a pattern without "/" to the file name at any depth, one with "/" to the whole path.
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in pattern else name, pattern) for pattern in patterns)


def _tree_file(path: str, entry: FileEntry) -> dict:
    item: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return item


def _range_start(header: str | None, size: int) -> int:
    """The start of a `bytes=N-` range (the only form the client sends, to resume a download); 0 for none."""
    if not header or not header.startswith("bytes="):
        return 0
    start = header[len("bytes=") :].split("-")[0]
    return int(start) if start.isdigit() and int(start) < size else 0


# --------------------------------------------------------------------------------------------------------------------
# The fixture
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A running `HubServer` that `huggingface_hub` talks to for the duration of one test.

    `huggingface_hub` copies `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_HUB_DISABLE_XET` and the cache paths into
    `huggingface_hub.constants` when it is imported, so both the environment (for anything imported later) and the
    constants are patched; monkeypatch restores both afterwards, so the offline default of conftest.py holds again for
    the next test. The cache and the agent-harness registry file go to `tmp_path`, never to the user's HF_HOME.
    """
    from huggingface_hub import constants

    try:
        # `datasets` copies the endpoint and offline flag at its import. Imported now (before the environment changes),
        # its copies can be patched and restored here; imported first inside a test, they would keep this server's
        # address and "online" for the rest of the session.
        import datasets.config as datasets_config
    except ImportError:
        datasets_config = None

    server = HubServer(tmp_path / "hub-storage").start()
    url, cache = server.url, str(tmp_path / "hf-cache")
    env = {"HF_ENDPOINT": url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": FAKE_TOKEN, "HF_HUB_CACHE": cache}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")])))
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
    if datasets_config is not None:
        monkeypatch.setattr(datasets_config, "HF_ENDPOINT", url)
        monkeypatch.setattr(datasets_config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
        monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", False)
    try:
        yield server
    finally:
        server.stop()
