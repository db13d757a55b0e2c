"""Which column of a CRM export is which prospect field: presets and ``--map`` files.

A map is data (YAML), the shipped presets (``presets/*.yaml``: generic, hubspot, salesforce,
apollo, pipedrive) and a user's ``--map FILE.yaml`` alike::

    name: my-export
    columns:                       # field: the headers that hold it, best first
      email: [Work Email, Email]
      company: Account
    custom:                        # custom field: the headers that hold it
      lead_source: [Lead Source]

Headers match ignoring case, spaces and punctuation ("First Name" = "first_name"). Maps are
combined in priority order (``--map``, then ``--preset``, then generic); for each field the
first listed column the file has, and that is not empty on a row, gives the row's value.
Columns no map claims are unmapped: listed, and stored as custom fields only when asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sequencer.core.yaml_source import SourceError, YamlSource, load_yaml
from sequencer.intake.prospect_values import FIELDS, custom_key

PRESETS = ("hubspot", "salesforce", "apollo", "pipedrive")
MAX_COLUMNS = 500  # in a file's header; CRM exports of "all properties" reach a few hundred
ALL = "all"


@dataclass(frozen=True)
class ColumnMap:
    name: str
    columns: dict[str, tuple[str, ...]]  # field -> headers, best first
    custom: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Mapping:
    """A map applied to one file's header."""

    headers: list[str]
    fields: dict[str, list[int]] = field(default_factory=dict)  # field -> column indexes, best first
    custom: dict[str, int] = field(default_factory=dict)  # custom field -> column index
    unmapped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # asked-for custom fields no column holds

    def values(self, row: Sequence[str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """(field values, custom values, the header each came from) of one row; each field
        from its best non-empty column."""
        values: dict[str, str] = {}
        columns: dict[str, str] = {}
        for name, indexes in self.fields.items():
            index = next((i for i in indexes if i < len(row) and row[i].strip()), None)
            if index is not None:
                values[name], columns[name] = row[index], self.headers[index]
        custom = {}
        for name, index in self.custom.items():
            if index < len(row) and row[index].strip():
                custom[name], columns[name] = row[index], self.headers[index]
        return values, custom, columns


def header_key(header: str) -> str:
    return re.sub(r"[^0-9a-z]", "", header.casefold())


@lru_cache(maxsize=8)
def preset(name: str) -> ColumnMap:
    """A shipped map by name; ``ValueError`` listing the presets for another name."""
    if name != "generic" and name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    path = resources.files("sequencer.intake").joinpath("presets", f"{name}.yaml")
    with resources.as_file(path) as real:
        return load(Path(real))


def load(path: Path) -> ColumnMap:
    """Read a map file; every problem is a ``SourceError`` line ``file:line: ...``."""
    source = load_yaml(path)
    data = source.data
    if not isinstance(data, dict):
        raise SourceError([f"{path}:1: a column map is a mapping with 'columns' (and optionally 'custom')"])
    errors = [f"{source.where(key)}: unknown key {key!r} (expected name, columns, custom)"
              for key in data if key not in ("name", "columns", "custom")]
    columns = _headers(source, "columns", errors, known=FIELDS)
    custom = _headers(source, "custom", errors, known=None)
    if not columns and not custom and not errors:
        errors.append(f"{path}:1: the map names no columns")
    if errors:
        raise SourceError(errors)
    return ColumnMap(str(data.get("name") or path.stem), columns, custom)


def _headers(source: YamlSource, key: str, errors: list[str],
             known: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    section = source.data.get(key) or {}
    if not isinstance(section, dict):
        errors.append(f"{source.where(key)}: '{key}' must map a field to its header(s)")
        return {}
    result = {}
    for name, headers in section.items():
        where = source.where(key, name)
        if known is not None and name not in known:
            errors.append(f"{where}: unknown field {name!r}; fields are: {', '.join(known)}")
            continue
        if known is None and (not isinstance(name, str) or custom_key(name) != name):
            errors.append(f"{where}: custom field {name!r} must be lower case letters, digits and _ "
                          f"(like {custom_key(str(name))!r})")
            continue
        listed = [headers] if isinstance(headers, str) else headers
        if not isinstance(listed, list) or not listed or not all(isinstance(h, str) and h.strip() for h in listed):
            errors.append(f"{where}: {name}: expected a header or a list of headers")
            continue
        result[name] = tuple(listed)
    return result


def combine(*maps: ColumnMap) -> ColumnMap:
    """One map from several, the first one's headers first for every field."""
    columns: dict[str, tuple[str, ...]] = {}
    custom: dict[str, tuple[str, ...]] = {}
    for part in maps:
        for target, source in ((columns, part.columns), (custom, part.custom)):
            for name, headers in source.items():
                target[name] = (*target.get(name, ()), *headers)
    return ColumnMap("+".join(part.name for part in maps), columns, custom)


def resolve(column_map: ColumnMap, headers: list[str], custom_fields: Sequence[str] = ()) -> Mapping:
    """Apply ``column_map`` to a header. ``custom_fields`` names unmapped columns to keep as
    custom fields (by header or by custom field name), or is ``["all"]`` for every one."""
    mapping = Mapping(headers=headers)
    by_key: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        by_key.setdefault(header_key(header), []).append(index)
    claimed: set[int] = set()
    for target, source in ((mapping.fields, column_map.columns), (None, column_map.custom)):
        for name, aliases in source.items():
            indexes = [i for alias in aliases for i in by_key.get(header_key(alias), []) if i not in claimed]
            indexes = list(dict.fromkeys(indexes))
            if not indexes:
                continue
            claimed.update(indexes)
            if target is None:
                mapping.custom[name] = indexes[0]
            else:
                target[name] = indexes
    wanted = {header_key(name) for name in custom_fields}
    everything = ALL in custom_fields
    for index, header in enumerate(headers):
        if index in claimed or not header.strip():
            continue
        key = custom_key(header)
        if everything or header_key(header) in wanted:
            mapping.custom.setdefault(key, index)
            wanted.discard(header_key(header))
        else:
            mapping.unmapped.append(header)
    mapping.problems = [f"--custom-fields: no unmapped column {name!r} in the file"
                        for name in custom_fields if name != ALL and header_key(name) in wanted]
    return mapping


def suggest(headers: list[str]) -> tuple[str, int] | None:
    """The preset that maps the most more columns of ``headers`` than generic does, and how many."""
    base = len(headers) - len(resolve(preset("generic"), headers).unmapped)
    best = max(((name, len(headers) - len(resolve(combine(preset(name), preset("generic")), headers).unmapped))
                for name in PRESETS), key=lambda item: item[1])
    return (best[0], best[1] - base) if best[1] > base else None
