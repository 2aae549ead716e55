"""Just enough PromQL reading to find which series (and which of their labels) an expression selects.

Only for the platform's own rules and dashboards, whose syntax is known: promtool parses them for real; this finds
names so they can be checked against what the services export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Grafana's variables, replaced by values Prometheus accepts before promtool parses a dashboard query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "5m",
    "$__range": "1h",
    "${model}": ".+",
    "$model": ".+",
}

_KEYWORDS = {
    # binary and set operators, modifiers
    "and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right", "by", "without",
    # aggregation operators (``sum by (x) (...)`` puts the keyword, not a parenthesis, after the name)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]|\boffset\s+-?[0-9a-z]+")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass(frozen=True)
class Selector:
    """A series selector: the metric name and the label names its matchers use."""

    name: str
    labels: frozenset[str]


def substitute_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def selectors(expr: str) -> list[Selector]:
    """Every series selector in ``expr`` (strings, label lists, ranges and functions are not metric names)."""
    text = _STRING.sub('""', expr)
    text = _LABEL_LIST.sub(" ", text)
    text = _RANGE.sub(" ", text)
    found: list[Selector] = []

    def braces(match: re.Match[str]) -> str:
        name, matchers = match.group(1), match.group(2)
        labels = frozenset(_MATCHER_LABEL.findall(matchers))
        if not name:
            raise ValueError(f"selector without a metric name in {expr!r}")
        found.append(Selector(name, labels))
        return " "

    text = _SELECTOR.sub(braces, text)
    text = _NUMBER.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        followed_by_parenthesis = text[match.end() :].lstrip().startswith("(")
        if name in _KEYWORDS or followed_by_parenthesis:
            continue
        found.append(Selector(name, frozenset()))
    return found


def numbers(expr: str) -> set[float]:
    """The numeric literals of ``expr`` (not durations, not digits inside names or strings)."""
    text = _RANGE.sub(" ", _STRING.sub('""', expr))
    return {float(value) for value in _NUMBER.findall(text)}


def label_values_metric(query: str) -> str:
    """The metric of a Grafana ``label_values(metric, label)`` variable query."""
    match = re.fullmatch(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", query)
    if match is None:
        raise ValueError(f"not a label_values(metric, label) query: {query!r}")
    return match.group(1)


def grouping_labels(expr: str) -> set[str]:
    """Label names in ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` lists."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for match in _LABEL_LIST.finditer(text):
        inside = match.group(0).split("(", 1)[1].rstrip(")")
        labels.update(label.strip() for label in inside.split(",") if label.strip())
    return labels
