"""Project configuration: ``[tool.gandoctor]`` in pyproject.toml or a ``--config`` TOML file.

```toml
[tool.gandoctor]
disable = ["GD402"]              # rule codes or names
rules_dirs = ["gan_rules"]       # extra rule folders, relative to the config file
uses = ["gradient_penalty"]      # techniques the run uses that probes cannot see
[tool.gandoctor.rules.GD101]
warmup_steps = 1000              # any key of the rule's [params]
```
In a ``--config`` file the same keys sit at the top level (or under ``[tool.gandoctor]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ._toml import read_toml
from .errors import ConfigError, RuleError
from .rules import RuleSet, load_rules, with_overrides

_KEYS = {"disable", "rules_dirs", "uses", "rules"}


@dataclass(frozen=True)
class Config:
    disable: tuple[str, ...] = ()
    rules_dirs: tuple[Path, ...] = ()
    uses: frozenset[str] = frozenset()
    rule_params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    origin: str = "defaults"

    def ruleset(self, extra_dirs: tuple[Path, ...] = ()) -> RuleSet:
        rules = load_rules(tuple(self.rules_dirs) + tuple(extra_dirs))
        try:
            return with_overrides(rules, self.disable, self.rule_params, self.origin)
        except RuleError as exc:
            raise ConfigError(str(exc)) from None


def _parse(table: Mapping[str, Any], origin: Path) -> Config:
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{origin}: key 'tool.gandoctor.{key}': unknown; allowed: {', '.join(sorted(_KEYS))}")

    def str_list(key: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: key 'tool.gandoctor.{key}': expected a list of strings, got {value!r}")
        return value

    rules = table.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(v, dict) for v in rules.values()):
        raise ConfigError(f"{origin}: key 'tool.gandoctor.rules': expected tables [tool.gandoctor.rules.<CODE>], got {rules!r}")
    return Config(
        disable=tuple(str_list("disable")),
        rules_dirs=tuple((origin.parent / d) for d in str_list("rules_dirs")),
        uses=frozenset(str_list("uses")),
        rule_params={k: dict(v) for k, v in rules.items()},
        origin=str(origin),
    )


def _read(path: Path) -> Mapping[str, Any]:
    return read_toml(path, ConfigError)


def load_config(path: str | Path | None = None, search_from: str | Path | None = None) -> Config:
    """An explicit config file, else the nearest pyproject.toml with [tool.gandoctor], else defaults."""
    if path is not None:
        p = Path(path)
        data = _read(p)
        tool = data.get("tool")
        if isinstance(tool, dict) and "gandoctor" in tool:
            table = tool["gandoctor"]
            if not isinstance(table, dict):
                raise ConfigError(f"{p}: key 'tool.gandoctor': expected a table, got {table!r}")
            return _parse(table, p)
        if p.name == "pyproject.toml":
            return Config(origin=str(p))  # a pyproject without [tool.gandoctor]: defaults
        return _parse(data, p)
    here = Path(search_from or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            data = _read(candidate)
            tool = data.get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("gandoctor"), dict):
                return _parse(tool["gandoctor"], candidate)
            return Config()
    return Config()
