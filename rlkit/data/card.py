"""The Minari dataset card: who made the data, with which code, and what rebuilds its env.

The defaults come from one place, the project's own ``[project]`` table: ``authors`` (names and
e-mails), ``urls`` (the code permalink) and ``dependencies`` (the requirements). In a checkout
that is ``pyproject.toml``; an installed package carries the same table as its metadata. A
conversion overrides them (``--author``, ``--author-email``, ``--code-permalink``), because the
person who made a dataset is often not this code's author and a fork is a better permalink.

Nothing is made up. A field with no value is left out of the card, and Minari shows it as not
provided, rather than filled with a placeholder. A permalink that is not an ``http(s)://`` URL is
refused, because ``minari show`` renders it as a link. The requirements name only packages that
PyPI serves (gymnasium, mujoco), so ``pip install`` of each works; this package, whose env ids
the datasets use, is not on PyPI, and the description says where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

from rlkit.data.errors import DatasetError

PACKAGE = "csro"
#: The checkout's pyproject.toml (absent in an installed package: its metadata is read instead).
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
#: The PyPI packages that rebuilding an env needs besides this one, as the dependencies name them.
ENV_PACKAGES = ("gymnasium", "mujoco")
#: ``[project.urls]`` keys that name the code, in the order they are preferred (case-insensitive).
URL_KEYS = ("source", "source code", "repository", "code", "homepage")
_URL = re.compile(r"https?://[^\s/]+\S*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class ProjectInfo:
    """What the project's metadata says about itself (each part empty when it says nothing)."""

    authors: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    url: str | None = None
    requirements: list[str] = field(default_factory=list)


def _requirement(text: str) -> str | None:
    """``text`` (a dependency) normalised, if it names one of :data:`ENV_PACKAGES`; else None."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # minari depends on packaging; without it, compare the bare name
        name = re.split(r"[\s\[<>=!~;]", text.strip(), maxsplit=1)[0].lower()
        return text.strip() if name in ENV_PACKAGES else None
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    return str(req) if req.name.lower() in ENV_PACKAGES and req.marker is None else None


def _pick_url(urls: dict[str, str]) -> str | None:
    lowered = {str(k).strip().lower(): str(v).strip() for k, v in urls.items()}
    for key in URL_KEYS:
        if key in lowered and _URL.fullmatch(lowered[key]):
            return lowered[key]
    return None


def _from_pyproject(path: Path) -> ProjectInfo | None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return None
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        return None
    if project.get("name") != PACKAGE:
        return None
    people = [a for a in project.get("authors", []) if isinstance(a, dict)]
    return ProjectInfo(
        authors=[str(a["name"]) for a in people if a.get("name")],
        emails=[str(a["email"]) for a in people if a.get("email")],
        url=_pick_url(project.get("urls", {}) or {}),
        requirements=[r for r in map(_requirement, project.get("dependencies", [])) if r],
    )


def _from_installed() -> ProjectInfo:
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        meta = metadata(PACKAGE)
    except PackageNotFoundError:
        return ProjectInfo()
    authors = [meta["Author"]] if meta.get("Author") else []
    emails = []
    for name, address in getaddresses(meta.get_all("Author-email") or []):  # "Name <a@b>, Other <c@d>"
        if name:
            authors.append(name)
        if address:
            emails.append(address)
    urls = dict(part.split(",", 1) for part in (meta.get_all("Project-URL") or []) if "," in part)
    return ProjectInfo(authors=authors, emails=emails, url=_pick_url(urls),
                       requirements=[r for r in map(_requirement, meta.get_all("Requires-Dist") or []) if r])


def project_info() -> ProjectInfo:
    """The checkout's pyproject.toml when there is one (the source of truth), else the installed metadata."""
    return _from_pyproject(PYPROJECT) or _from_installed()


def dataset_card(author: str | None = None, author_email: str | None = None,
                 code_permalink: str | None = None) -> tuple[dict, list[str]]:
    """(the card's fields for ``minari.create_dataset_from_buffers``, the names of those left out).

    The arguments override :func:`project_info`; each is checked, so a bad one is refused (one line)
    before any dataset is written."""
    info = project_info()
    if code_permalink is not None and not _URL.fullmatch(code_permalink.strip()):
        raise DatasetError(f"--code-permalink must be a URL (https://...), e.g. your fork at the commit that made "
                           f"the data; got {code_permalink!r}")
    if author_email is not None and not _EMAIL.fullmatch(author_email.strip()):
        raise DatasetError(f"--author-email must be an e-mail address (name@host), got {author_email!r}")
    if author is not None and not author.strip():
        raise DatasetError("--author is empty: give the name of who made the data")
    card: dict = {"requirements": info.requirements,
                  "algorithm_name": "SAC behaviour policy checkpoints (CSRO data generator)"}
    authors = {author.strip()} if author is not None else set(info.authors)
    emails = {author_email.strip()} if author_email is not None else set(info.emails)
    url = code_permalink.strip() if code_permalink is not None else info.url
    if authors:
        card["author"] = authors
    if emails:
        card["author_email"] = emails
    if url:
        card["code_permalink"] = url
    missing = [k for k in ("author", "author_email", "code_permalink") if k not in card]
    return card, missing
