"""Reading the router's data files (rules, jurisdictions) and naming each problem by its path.

A county edits these files by hand, so an error must say where the bad entry is
("departments.by_category.labor: 'hr' is not a department") and list every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class DataFileError(Exception):
    """A data file cannot be used; `problems` lists every reason, each with its path."""

    what = "data file"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the {self.what}:\n{listed}")


def read_yaml(path: str | Path, error: type[DataFileError]) -> Mapping[str, Any]:
    """The file's top-level mapping, or `error` saying why there is none."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise error(source, [f"not valid YAML: {exc}"]) from None
    return require_mapping(data, source, error)


def require_mapping(data: Any, source: str, error: type[DataFileError]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise error(source, ["the file must hold a mapping of sections at its top level"])
    return data


def describe(exc: ValidationError) -> list[str]:
    """Each pydantic error as 'path.to[3].entry: what is wrong'."""
    return [_describe(error) for error in exc.errors()]


def _describe(error: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":
        loc = loc[:-2]  # a bad key is named in the message itself
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden":
        message = "is not a known field"
    return f"{path_of(loc)}: {message}"


def path_of(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "literal[")):
            continue  # pydantic's names for validators, not part of the file's structure
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"
