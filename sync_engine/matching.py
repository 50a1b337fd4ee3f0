"""First-sync matching: is this unlinked record one we already know from another system?

Keys are normalised (mapping.normalize) so that 深圳市华为技术有限公司 and
华为技术 compare equal. Strong keys identify a company or person on their own
(tax id / unified social credit code, domain, e-mail); the name is good enough
only when no strong key contradicts it. The outcome is never a guess:

- exactly one confident candidate → link to it;
- several confident candidates, or only weak ones (similar but not equal names,
  or equal names with contradicting tax ids) → the review queue;
- no candidate → create a new canonical record.

``match.min_score`` (an entity's config) is the name similarity (difflib ratio of the
normalised names, 0–1) at or above which a name-only match links: by default only equal
names link; with ``min_score: 0.8`` 华为技术有限公司 and 华为技术服务有限公司 (80 % alike)
link too, while a near match below it (80 % alike or more) still goes to review.

Candidates are found by equal keys and by the first two characters of the name key, which
cannot bring 深圳市华为技术有限公司 and 华为技术有限公司 together when the name key keeps the
region (``normalize: company_name``), nor Shenzhen Huawei Technologies Co., Ltd. and Huawei
Technologies Ltd. So each company-name key also has a *core* key (``name#core``): the name
without a leading province or city (深圳市, 广东省, 北京, Shenzhen, Beijing…), legal-form suffixes
(有限公司, 股份有限公司, Ltd, Inc, Co., GmbH…) and a trailing 集团 / Group. Equal cores (alike
ones too when the name key keeps the region) make records candidates of each other; whether they
link is still decided on the name keys themselves (equal, or ``match.min_score``).
"""
from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mapping.normalize import NORMALIZERS, company_name

CONFIDENT = 0.9
WEAK = 0.75
SIMILAR = 0.8

#: Keys used when an entity's config names none (priority order).
DEFAULT_KEYS: dict[str, list[tuple[str, str, bool]]] = {
    # (canonical field, normaliser, strong)
    "partner": [("tax_id", "tax_id", True), ("domain", "domain", True), ("name", "company_name_no_region", False)],
    "account": [("tax_id", "tax_id", True), ("domain", "domain", True), ("name", "company_name_no_region", False)],
    "contact": [("email", "email", True), ("mobile", "phone", True), ("name", "person_name", False)],
    "deal": [("name", "company_name", False)],
    "sales_order": [("number", "tax_id", True)],
}


@dataclass(frozen=True, slots=True)
class KeySpec:
    field: str
    normalizer: str
    strong: bool

    def key_of(self, values: Mapping[str, Any]) -> str | None:
        raw = values.get(self.field)
        if raw in (None, ""):
            return None
        return _normalized(self.normalizer, str(raw))


@functools.lru_cache(maxsize=4096)
def _normalized(normalizer: str, raw: str) -> str | None:
    # A batch computes each new record's keys twice (to match it, then to index its merged
    # values); the normalisers (Unicode folding, regular expressions) are pure. Bounded: a batch
    # holds a few hundred records.
    return NORMALIZERS[normalizer](raw)


#: Normalisers of company names: their keys get a core key (see the module's docstring).
COMPANY_NORMALIZERS = frozenset({"company_name", "company_name_no_region"})
CORE = "#core"

#: Leading regions of romanised names (Shenzhen Huawei Technologies …), longest first.
_LATIN_REGIONS = tuple(sorted((
    "beijing", "shanghai", "tianjin", "chongqing", "shenzhen", "guangzhou", "hangzhou", "nanjing", "suzhou",
    "chengdu", "wuhan", "xian", "dongguan", "foshan", "ningbo", "xiamen", "qingdao", "dalian", "wuxi", "changsha",
    "zhengzhou", "jinan", "hefei", "fuzhou", "shenyang", "zhuhai", "hongkong", "macau", "guangdong", "zhejiang",
    "jiangsu", "shandong", "fujian", "hubei", "hunan", "sichuan", "henan", "hebei", "anhui", "liaoning",
), key=len, reverse=True))
#: What is left after the legal form when a group names itself: 美的集团, Fosun Group.
_GROUP_SUFFIXES = ("控股集团", "集团", "控股", "group", "holdings", "holding")


def core_key_field(field: str) -> str:
    return field + CORE


@functools.lru_cache(maxsize=4096)
def core_name(name: str) -> str:
    """The core of a company name: 深圳市华为技术(中国)有限公司 → 华为技术, Shenzhen Huawei Technologies
    Co., Ltd. → huaweitechnologies, 美的集团股份有限公司 → 美的. Never shorter than two characters."""
    return _trimmed(company_name(name, strip_region=True) or name)


@functools.lru_cache(maxsize=4096)
def _trimmed(key: str) -> str:
    """A region-stripped key without a trailing group designation or a leading romanised region."""
    core = key
    changed = True
    while changed:
        changed = False
        # One C call each rules out most names (no group suffix, no romanised region) before the loops.
        if core.endswith(_GROUP_SUFFIXES):
            for suffix in _GROUP_SUFFIXES:
                if core.endswith(suffix) and len(core) - len(suffix) >= 2:
                    core, changed = core[: -len(suffix)], True
                    break
        if core.startswith(_LATIN_REGIONS):
            for region in _LATIN_REGIONS:
                if core.startswith(region) and len(core) - len(region) >= 3:
                    core, changed = core[len(region):], True
                    break
        if changed:
            core = company_name(core, strip_region=True) or core
    return core


def weak_fields(specs: Sequence[KeySpec]) -> list[str]:
    """The fields whose alike values (not only equal ones) make candidates: weak keys, and the cores of
    names keyed with their region (a region-stripped name key already starts where its core does)."""
    weak = [s.field for s in specs if not s.strong]
    return weak + [core_key_field(s.field) for s in specs if not s.strong and s.normalizer == "company_name"]


def default_keys(entity: str) -> list[KeySpec]:
    return [KeySpec(*k) for k in DEFAULT_KEYS.get(entity, [("name", "person_name", False)])]


def keys_of(specs: Sequence[KeySpec], values: Mapping[str, Any]) -> dict[str, str]:
    """field -> normalised key, for the fields that have a value; a company name's core key too
    (``name#core``: always, so that a name without a region finds one with it and the other way round)."""
    out = {}
    for spec in specs:
        key = spec.key_of(values)
        if key:
            out[spec.field] = key
            if not spec.strong and spec.normalizer in COMPANY_NORMALIZERS:
                # A region-stripped key only needs trimming (cheap); one with its region, the raw name's core.
                core = _trimmed(key) if spec.normalizer == "company_name_no_region" else core_name(str(values[spec.field]))
                out[core_key_field(spec.field)] = core
    return out


def block_of(name_key: str | None) -> str | None:
    """A coarse bucket of names, so similar-but-not-equal names can be found without a full scan."""
    return name_key[:2] if name_key and len(name_key) >= 2 else None


@dataclass(slots=True)
class Candidate:
    canonical_id: str
    keys: dict[str, str]
    #: systems in which this canonical record already has a record
    systems: set[str] = field(default_factory=set)
    label: str = ""


@dataclass(slots=True)
class Scored:
    canonical_id: str
    score: float
    reason: str
    label: str = ""


@dataclass(slots=True)
class MatchDecision:
    outcome: Literal["link", "review", "create"]
    canonical_id: str | None = None
    candidates: list[Scored] = field(default_factory=list)
    reason: str = ""


def score(
    specs: Sequence[KeySpec], mine: Mapping[str, str], theirs: Mapping[str, str], *, min_score: float | None = None
) -> tuple[float, str]:
    strong_equal = [s.field for s in specs if s.strong and s.field in mine and mine[s.field] == theirs.get(s.field)]
    contradicting = [
        s.field for s in specs if s.strong and s.field in mine and s.field in theirs and mine[s.field] != theirs[s.field]
    ]
    weak = [s for s in specs if not s.strong]
    if strong_equal and not contradicting:
        return 1.0, f"same {', '.join(strong_equal)}"
    best = 0.0
    reason = ""
    for spec in weak:
        a, b = mine.get(spec.field), theirs.get(spec.field)
        if not a or not b:
            continue
        if a == b:
            value, why = CONFIDENT, f"same {spec.field}"
        else:
            ratio = _ratio(a, b, SIMILAR if min_score is None else min(SIMILAR, min_score))
            if min_score is not None and ratio >= min_score:
                # Alike enough for this company's data (match.min_score): as good as the same name.
                value, why = CONFIDENT, f"similar {spec.field} ({ratio:.0%}, match.min_score {min_score:g})"
            else:
                # 80 % alike or more is worth a person's look (星河博电子 vs 星河博电器); never a link on its own.
                value = WEAK + (ratio - SIMILAR) / (1 - SIMILAR) * (CONFIDENT - WEAK) * 0.99 if ratio >= SIMILAR else ratio / 2
                why = f"similar {spec.field} ({ratio:.0%})"
        if value > best:
            best, reason = value, why
    if contradicting and best > 0:
        # Same name, different tax ids: maybe a typo, maybe two companies. A person decides.
        return min(best, WEAK), f"{reason} but different {', '.join(contradicting)}"
    if strong_equal and contradicting:
        return WEAK, f"same {', '.join(strong_equal)} but different {', '.join(contradicting)}"
    return best, reason


def _ratio(a: str, b: str, floor: float) -> float:
    """difflib's ratio of two names, or an upper bound of it when that bound is below ``floor``.

    Below ``floor`` (the lowest ratio :func:`score` tells apart) a name only scores half its ratio, which
    no decision counts (under WEAK). Most candidates of a name block end there, and the bound (characters
    in common, regardless of order) costs a fraction of the ratio (the longest common blocks). The bound
    is above 0 exactly when the ratio is, which :func:`score` also reads, as long as difflib does not
    treat frequent characters as junk: it does from 200 characters on, so long names get the ratio."""
    matcher = difflib.SequenceMatcher(None, a, b)
    if len(b) < 200:
        bound = matcher.quick_ratio()
        if bound < floor:
            return bound
    return matcher.ratio()


def _strongly_equal(specs: Sequence[KeySpec], mine: Mapping[str, str], theirs: Mapping[str, str]) -> bool:
    """The precondition of a score of 1.0: a strong key equal and none contradicting."""
    equal = contradicting = False
    for s in specs:
        if s.strong and s.field in mine and s.field in theirs:
            if mine[s.field] == theirs[s.field]:
                equal = True
            else:
                contradicting = True
    return equal and not contradicting


def decide(
    specs: Sequence[KeySpec], mine: Mapping[str, str], candidates: Iterable[Candidate], *, system: str,
    min_score: float | None = None,
) -> MatchDecision:
    """``min_score``: the entity's ``match.min_score`` (None: only equal names link)."""
    scored: list[Scored] = []
    twins: list[Scored] = []
    for candidate in candidates:
        if system in candidate.systems and not _strongly_equal(specs, mine, candidate.keys):
            continue  # cannot score 1.0: not worth comparing names (the costly part) to learn it
        value, reason = score(specs, mine, candidate.keys, min_score=min_score)
        if system in candidate.systems:
            # It already has its own record in this system: not the same one — unless they share a
            # tax id or domain, when this is most likely a duplicate keyed in twice (or created on
            # both sides at once). A person decides; crmsync does not add a third copy.
            if value >= 1.0:
                twins.append(Scored(candidate.canonical_id, value, f"{reason}, but already linked to another {system} record"))
            continue
        if value >= WEAK:
            scored.append(Scored(candidate.canonical_id, round(value, 3), reason, candidate.label))
    scored.sort(key=lambda s: (-s.score, s.canonical_id))
    confident = [s for s in scored if s.score >= CONFIDENT]
    if len(confident) == 1:
        return MatchDecision("link", confident[0].canonical_id, scored, confident[0].reason)
    if len(confident) > 1:
        return MatchDecision("review", None, scored, f"{len(confident)} records match equally well")
    if scored:
        return MatchDecision("review", None, scored, f"only a weak match: {scored[0].reason}")
    if twins:
        return MatchDecision("review", None, twins, f"possible duplicate: {twins[0].reason}")
    return MatchDecision("create", None, [], "no match")
