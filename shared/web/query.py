"""Query-string parameters, checked alike by every service's endpoints: each one the endpoint knows, each
given once. A misspelt filter that is ignored answers as if it had matched; a repeated one of which only
the first counts answers another question than the one asked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.problems import Problem, problem_type


def bad_parameter(detail: str, slug: str = "bad-parameter") -> Problem:
    return Problem(400, "Bad Request", detail, type_=problem_type(slug))


def single_values(query: Mapping[str, str], lists: Iterable[str] = ()) -> dict[str, str]:
    """The query string as one value per name; a name given twice is refused (400 ``repeated-parameter``)
    rather than one value silently dropped. ``lists`` are the parameters that take comma-separated values."""
    getall = getattr(query, "getall", None)
    repeated = sorted({name for name in query if getall is not None and len(getall(name)) > 1})
    if repeated:
        named_lists = [name for name in repeated if name in set(lists)]
        hint = f" Give a list as one comma-separated value, e.g. {named_lists[0]}=a,b." if named_lists else ""
        raise bad_parameter(f"Parameter(s) {', '.join(repeated)} given more than once; give each once.{hint}", "repeated-parameter")
    return dict(query)


def refuse_unknown(query: Mapping[str, str], known: Iterable[str]) -> None:
    """400 ``unknown-parameter`` naming the parameters ``query`` has that are not ``known``, and the known ones."""
    names = sorted(known)
    if unknown := sorted(set(query) - set(names)):
        them = f"the only parameter is {names[0]}" if len(names) == 1 else f"the parameters are {', '.join(names)}"
        raise bad_parameter(f"Unknown parameter(s) {', '.join(unknown)}; {them}.", "unknown-parameter")
