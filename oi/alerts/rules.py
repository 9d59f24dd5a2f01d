"""The rules file: :class:`Rule` and its validation (a bad rule is a :class:`~oi.config.ConfigError` naming it)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from oi.analytics import INTERVALS
from oi.config import ConfigError

KINDS = ("oi_change", "pcr_cross", "max_pain_shift", "level_cross", "wall")
LEGS = ("ce", "pe")
DEFAULT_COOLDOWN_MINUTES = 15.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")  # no "|": it separates the parts of an event id

# Parameters each kind takes (name → required); anything else in a rule is a typo worth refusing.
COMMON = {"name", "kind", "symbols", "expiry", "cooldown"}
PARAMS: dict[str, dict[str, bool]] = {
    "oi_change": {"interval": True, "threshold": True, "unit": False, "leg": False},
    "pcr_cross": {"level": True, "direction": False},
    "max_pain_shift": {"strikes": True, "direction": False},
    "level_cross": {"levels": False, "direction": False},
    "wall": {"share": True, "leg": False},
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    symbols: tuple[str, ...] | None = None  # None: every configured symbol
    expiry: str = "nearest"  # "nearest", or "all": every followed expiry (each on its own, not the combined sum)
    cooldown: float = DEFAULT_COOLDOWN_MINUTES  # minutes
    interval: int | None = None  # oi_change
    threshold: float = 0.0  # oi_change: in `unit`
    unit: str = "units"  # oi_change: "units" or "lots"
    leg: str = "both"  # oi_change, wall: "ce", "pe" or "both"
    level: float = 0.0  # pcr_cross
    direction: str = "both"  # pcr_cross, max_pain_shift, level_cross: "up", "down" or "both"
    strikes: int = 0  # max_pain_shift
    levels: tuple[str, ...] = ("support", "resistance")  # level_cross
    share: float = 0.0  # wall: percent

    @property
    def legs(self) -> tuple[str, ...]:
        return LEGS if self.leg == "both" else (self.leg,)

    def wants(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def threshold_units(self, lot_size: int | None) -> float:
        return self.threshold * (lot_size or 0) if self.unit == "lots" else self.threshold


# --- the rules file ---------------------------------------------------------------------------------------------
def _number(
    rule: str, raw: dict, key: str, low: float, high: float | None = None, integer: bool = False, above: bool = False
) -> float:
    value = raw[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (not integer or isinstance(value, int))
    if not ok or not (value > low if above else value >= low) or (high is not None and value > high):
        span = f"{'above' if above else 'at least'} {low:g}" + (f" and at most {high:g}" if high is not None else "")
        what = "a whole number" if integer else "a number"
        raise ConfigError(f"OI_ALERTS_FILE: rule '{rule}': {key} must be {what} {span} (got {value!r})")
    return value


def _choice(rule: str, raw: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{rule}': {key} must be one of {', '.join(choices)} (got {value!r})")
    return value


def parse_rule(raw: object, index: int, symbols: tuple[str, ...], lot_sizes: Mapping[str, int]) -> Rule:
    """One ``[[rule]]`` table as a :class:`Rule`; :class:`ConfigError` naming the rule when anything is off."""
    if not isinstance(raw, dict):
        raise ConfigError(f"OI_ALERTS_FILE: rule #{index} is not a table ([[rule]] with key = value lines)")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"OI_ALERTS_FILE: rule #{index}: name must be 1-64 letters, digits, spaces or _.:- (got {name!r})"
        )
    kind = raw.get("kind")
    if kind not in PARAMS:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': kind must be one of {', '.join(KINDS)} (got {kind!r})")
    params = PARAMS[kind]
    unknown = sorted(set(raw) - COMMON - set(params))
    if unknown:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': unknown key(s) for kind {kind}: {', '.join(unknown)}")
    missing = [k for k, required in params.items() if required and k not in raw]
    if missing:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': kind {kind} needs {', '.join(missing)}")
    values: dict = {"name": name, "kind": kind}
    chosen = raw.get("symbols")
    if chosen is not None:
        if isinstance(chosen, str):
            chosen = [chosen]
        if not isinstance(chosen, list) or not chosen or not all(isinstance(s, str) for s in chosen):
            raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': symbols must be a list of symbol names")
        chosen = tuple(dict.fromkeys(s.strip().upper() for s in chosen))
        unknown = [s for s in chosen if s not in symbols]
        if unknown:
            listed = ", ".join(symbols)
            raise ConfigError(
                f"OI_ALERTS_FILE: rule '{name}': symbol(s) {', '.join(unknown)} not in OI_SYMBOLS ({listed})"
            )
        values["symbols"] = chosen
    values["expiry"] = _choice(name, raw, "expiry", ("nearest", "all"), "nearest")
    if "cooldown" in raw:
        values["cooldown"] = _number(name, raw, "cooldown", 0, 24 * 60)
    if kind == "oi_change":
        interval = raw["interval"]
        if interval not in INTERVALS or isinstance(interval, bool):
            choices = ", ".join(map(str, INTERVALS))
            raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': interval must be one of {choices} (got {interval!r})")
        values["interval"] = interval
        values["threshold"] = _number(name, raw, "threshold", 0, above=True)
        values["unit"] = _choice(name, raw, "unit", ("units", "lots"), "units")
        if values["unit"] == "lots":
            no_lot = [s for s in values.get("symbols") or symbols if not lot_sizes.get(s)]
            if no_lot:
                raise ConfigError(
                    f"OI_ALERTS_FILE: rule '{name}': unit 'lots' needs OI_LOT_SIZES for {', '.join(no_lot)}"
                )
    if kind in ("oi_change", "wall"):
        values["leg"] = _choice(name, raw, "leg", ("ce", "pe", "both"), "both")
    if kind in ("pcr_cross", "max_pain_shift", "level_cross"):
        values["direction"] = _choice(name, raw, "direction", ("up", "down", "both"), "both")
    if kind == "pcr_cross":
        values["level"] = _number(name, raw, "level", 0, above=True)
    if kind == "max_pain_shift":
        values["strikes"] = int(_number(name, raw, "strikes", 1, integer=True))
    if kind == "level_cross":
        chosen_levels = raw.get("levels", ["support", "resistance"])
        if isinstance(chosen_levels, str):
            chosen_levels = [chosen_levels]
        if (
            not isinstance(chosen_levels, list)
            or not chosen_levels
            or any(lv not in ("support", "resistance") for lv in chosen_levels)
        ):
            raise ConfigError(
                f"OI_ALERTS_FILE: rule '{name}': levels must be a list of 'support' and/or 'resistance' "
                f"(got {chosen_levels!r})"
            )
        values["levels"] = tuple(dict.fromkeys(chosen_levels))
    if kind == "wall":
        values["share"] = _number(name, raw, "share", 0, 100, above=True)
    return Rule(**values)


def load_rules(path: Path, symbols: tuple[str, ...], lot_sizes: Mapping[str, int]) -> tuple[Rule, ...]:
    """The rules in `path` (TOML: an array of ``[[rule]]`` tables), validated. Raises :class:`ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"OI_ALERTS_FILE: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"OI_ALERTS_FILE: {path} is not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"rule"})
    if extra:
        raise ConfigError(f"OI_ALERTS_FILE: {path}: unknown top-level key(s) {', '.join(extra)}; rules go in [[rule]]")
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"OI_ALERTS_FILE: {path}: 'rule' must be an array of tables ([[rule]])")
    rules = [parse_rule(raw, i + 1, symbols, lot_sizes) for i, raw in enumerate(raw_rules)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ConfigError(f"OI_ALERTS_FILE: rule '{rule.name}' is defined twice (names identify fired events)")
        seen.add(rule.name)
    return tuple(rules)
