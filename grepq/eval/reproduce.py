"""``grepq reproduce``: the paper's tables from one configuration (:data:`grepq.eval.schema.REPRODUCE_SCHEMA`).

Table 2 (zero-shot) and Table 1 (data-efficient) run on every dataset given, Table 3 on ``tables.cross_pairs`` whose
two datasets are given, Table 4 (LL features only, ``tables.table4_dataset``) once per ``weights.ll_per_pair_weight``
entry. What cannot run (no root, a paper dataset absent, a pair missing a dataset) is listed as skipped, with why.
The plan also checks, before any work, what a step would fail on (a missing weights file, a wrong root, more labels
than a split's training part holds, too few images for a correlation, nothing to run): the dry run lists these
problems and both it and the real run refuse with :class:`PlanError`.

Resumable: features are extracted once per (weights, dataset) through the feature cache, and each step writes
``<out>/steps/<step>.json`` after its result files. A step is done when that record's ``key`` equals
:func:`step_key` now (the step, its datasets and image counts, the result settings, each weights file's size and
mtime): a killed run restarts at the first step not done; a changed setting redoes the steps it concerns.

Outputs in ``<out>``: the result files and plots of :mod:`grepq.eval.runner`, ``tables.md``, ``srcc_vs_labels.png``,
``report.md`` (tables, skipped items, settings that differ from the paper, timings) and ``run_info.json``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tqdm import tqdm

from ..config import flatten
from ..data.datasets import DatasetError, IQADataset, load_dataset, loader_name, table_name
from ..utils import atomic_write
from ..version import __version__, git_revision
from . import paper_numbers as paper
from .features import FEATURE_SETS
from .from_config import (
    feature_options,
    regression_settings,
    scorer_from_config,
)
from .schema import REPRODUCE_SCHEMA

__all__ = ["Step", "Plan", "PlanError", "make_plan", "describe_plan", "run_reproduce", "STEPS_DIR", "RESULT_SETTINGS"]

#: Folder (inside the output folder) of the step records that make a run resumable.
STEPS_DIR = "steps"
#: Settings that change results; those not from the paper, or changed from the paper's value, are listed in the report.
RESULT_SETTINGS = ("scoring.pos_embedding", "scoring.amp", "scoring.small_image", "scoring.official_clive_resize",
                   "scoring.components") + tuple(f"protocol.{k}" for k in REPRODUCE_SCHEMA.tree["protocol"])
MAIN = "main"


class PlanError(ValueError):
    """What the plan found that the run would fail on; nothing was computed."""


@dataclass
class Step:
    """One unit of work. ``kind``: features | zeroshot | data_efficient | cross_dataset; ``datasets``: entry names
    (source first); ``weights``: "main" or a Table-4 pair weight; ``table``: the table it feeds (0: features)."""

    id: str
    kind: str
    datasets: Tuple[str, ...]
    table: int = 0
    weights: str = MAIN
    images: int = 0

    @property
    def record_name(self) -> str:
        return self.id.replace("->", "_to_").replace("/", "__").replace("@", "_at_") + ".json"


@dataclass
class Plan:
    """Datasets loaded (entry name -> dataset), steps in order, what is skipped: (item, reason), and the problems
    the run would fail on."""

    cfg: Dict[str, Any]
    datasets: Dict[str, IQADataset] = field(default_factory=dict)
    steps: List[Step] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return Path(self.cfg["output"]["out"])


def _loader(name: str, entry: Dict[str, Any]) -> str:
    return loader_name(entry.get("loader") or name)


def entry_table_name(name: str, entry: Dict[str, Any]) -> str:
    """The name a dataset entry has in the tables: the paper's name for a known loader ("KonIQ"), else the entry's."""
    loader = _loader(name, entry)
    return table_name(name if loader == "csv" else loader)


def _load_entry(name: str, entry: Dict[str, Any]) -> IQADataset:
    options = dict(entry.get("options") or {})
    # a CSV dataset is named after its entry, so that two CSV datasets do not share the name "csv" in result files
    display = options.pop("name", name) if _loader(name, entry) == "csv" else None
    try:
        ds = load_dataset(_loader(name, entry), entry["root"], limit=entry.get("limit"), **options)
    except DatasetError as exc:
        raise DatasetError(f"datasets.{name} (root {entry['root']}): {exc}") from None
    return ds if display is None else dataclasses.replace(ds, name=str(display))


def _resolve(ref: str, names: Dict[str, str]) -> Optional[str]:
    """A dataset named in tables.* -> the entry name: the entry itself, else the entry with the same table name."""
    if ref in names:
        return ref
    return next((n for n, t in names.items() if t == table_name(ref)), None)


def _load_datasets(plan: Plan) -> None:
    cfg = plan.cfg
    for name, entry in cfg["datasets"].items():
        if not (entry or {}).get("root"):
            plan.skipped.append((f"dataset {name}", "no root given"))
            continue
        try:
            plan.datasets[name] = _load_entry(name, entry)
        except DatasetError as exc:
            plan.problems.append(str(exc))
    given = {entry_table_name(n, e or {}) for n, e in cfg["datasets"].items()}
    if {1, 2} & set(cfg["tables"]["run"]):
        plan.skipped += [(f"dataset {ds}", "not in the configuration (the paper's Tables 1 and 2 report it)")
                         for ds in paper.TABLE2_SRCC if ds not in given]


def _table_steps(cfg: Dict[str, Any], loaded: Dict[str, IQADataset], skipped: List[Tuple[str, str]]) -> List[Step]:
    tables, names = cfg["tables"]["run"], {n: entry_table_name(n, cfg["datasets"][n] or {}) for n in loaded}
    steps = []
    for n in loaded:
        if 2 in tables:
            steps.append(Step(f"table2/{n}", "zeroshot", (n,), 2))
        if 1 in tables:
            steps.append(Step(f"table1/{n}", "data_efficient", (n,), 1))
    for src, tgt in cfg["tables"]["cross_pairs"] if 3 in tables else ():
        pair = (_resolve(src, names), _resolve(tgt, names))
        if None in pair:
            missing = [r for r, p in zip((src, tgt), pair) if p is None]
            skipped.append((f"Table 3 {src} -> {tgt}", f"{' and '.join(missing)} not given"))
        else:
            steps.append(Step(f"table3/{pair[0]}->{pair[1]}", "cross_dataset", pair, 3))
    if 4 in tables:
        per_pw, ds = cfg["weights"]["ll_per_pair_weight"], cfg["tables"]["table4_dataset"]
        entry = _resolve(ds, names)
        if not per_pw:
            skipped.append(("Table 4", "no LL weights per pair weight listed (weights.ll_per_pair_weight)"))
        elif entry is None:
            skipped.append(("Table 4", f"its dataset {ds} is not given"))
        else:
            steps += [Step(f"table4/{m}", "data_efficient", (entry,), 4, weights=m) for m in per_pw]
    return steps


def make_plan(cfg: Dict[str, Any]) -> Plan:
    """Load every dataset given, list the steps (one features step per (weights, dataset) used, then the table
    steps) and what they would fail on (``plan.problems``: a wrong root names the entry); nothing is computed."""
    plan = Plan(cfg)
    _load_datasets(plan)
    loaded = plan.datasets
    table_steps = _table_steps(cfg, loaded, plan.skipped)
    features = {}
    for s in table_steps:
        s.images = sum(len(loaded[n]) for n in s.datasets)
        for n in s.datasets:
            suffix = "" if s.weights == MAIN else f"@{s.weights}"
            features.setdefault((s.weights, n), Step(f"features/{n}{suffix}", "features", (n,), 0, s.weights,
                                                     len(loaded[n])))
    plan.steps = list(features.values()) + table_steps
    missing = [f"weights.{k}: {p or 'not given'}" for k, p in weight_files(plan).items()
               if (p is None and k != "clip") or (p is not None and not _is_file_or_name(p))]
    if missing:
        plan.problems.append(f"weights not found: {'; '.join(missing)} (relative paths: from the current folder)")
    if not table_steps and not plan.problems:
        why = "; ".join(f"{item}: {reason}" for item, reason in plan.skipped) or "tables.run is empty"
        plan.problems.append(f"nothing to run ({why})")
    plan.problems += _step_problems(plan)
    return plan


def _labels_problem(ds: IQADataset, p: Dict[str, Any]) -> Optional[str]:
    """Why the data-efficient protocol cannot run on ``ds`` with ``protocol`` settings ``p`` (its checks, made on the
    splits alone), or None."""
    from .splits import split_indices
    n = max(p["n_train"])
    for s in range(p["splits"]):
        train, test = split_indices(len(ds), s, seed=p["seed"], train_fraction=p["train_fraction"], refs=ds.refs)
        if n > train.size:
            return (f"n_train={n} exceeds the {train.size} training images of split {s} ({len(ds)} images, "
                    f"train_fraction={p['train_fraction']})")
        if test.size < 3:
            return f"split {s}: expected at least 3 test images, got {test.size}"
    return None


def _step_problem(plan: Plan, step: Step) -> Optional[str]:
    """Why a table step would fail, from its datasets' sizes and the settings alone (the protocols' own checks),
    or None."""
    from .metrics import MIN_SAMPLES
    from .regression import check_svr_size
    p, sizes = plan.cfg["protocol"], [len(plan.datasets[n]) for n in step.datasets]
    if step.kind == "data_efficient":
        if p["regressor"] == "svr":
            check_svr_size(max(p["n_train"]), "labelled images (label count)")
        return _labels_problem(plan.datasets[step.datasets[0]], p)
    if step.kind == "cross_dataset" and p["regressor"] == "svr":
        check_svr_size(sizes[0], "source images")
    # zero-shot: every correlation and fit (correlations()); cross-dataset: SRCC and the PLCC fit
    need = max(MIN_SAMPLES.values()) if step.kind == "zeroshot" else max(MIN_SAMPLES["none"],
                                                                         MIN_SAMPLES[p["plcc_fit"]])
    return f"expected at least {need} images to correlate, got {sizes[-1]}" if sizes[-1] < need else None


def _step_problems(plan: Plan) -> List[str]:
    """What the table steps would fail on, and feature sets the scoring components cannot give."""
    comps, problems = plan.cfg["scoring"]["components"], []
    allowed = [name for name, parts in FEATURE_SETS.items() if set(parts) <= set(comps)]
    unmet = [f for f in plan.cfg["protocol"]["feature_sets"] or () if f not in allowed]
    if unmet:
        problems.append(f"protocol.feature_sets {unmet} need components that scoring.components {comps} lacks")
    for step in (s for s in plan.steps if s.table):
        try:
            why = _step_problem(plan, step)
        except ValueError as exc:
            why = str(exc)
        if why:
            problems.append(f"{step.id}: {why}")
    return problems


def weight_files(plan: Plan) -> Dict[str, Optional[str]]:
    """The weights files the plan's steps read (key -> path)."""
    w, used = plan.cfg["weights"], {s.weights for s in plan.steps}
    out: Dict[str, Optional[str]] = {}
    if MAIN in used:
        comps = plan.cfg["scoring"]["components"]
        out.update({k: w[k] for k in ("ll", "pristine") if "ll" in comps})
        out.update({k: w[k] for k in ("hl", "clip") if "hl" in comps})
    if used - {MAIN}:
        out["pristine"] = w["pristine"]
    out.update({f"ll_per_pair_weight.{m}": w["ll_per_pair_weight"][m] for m in sorted(used - {MAIN})})
    return out


def _is_file_or_name(path: str) -> bool:
    """An existing file or folder, or a name without a file suffix (a CLIP model name such as "RN50")."""
    return os.path.exists(path) or (not Path(path).suffix and os.sep not in path)


def _file_stamp(path: Optional[str]) -> Optional[List[Any]]:
    if path is None or not os.path.exists(path):
        return None if path is None else [path]  # a model name (e.g. "RN50") or a missing file
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def step_key(plan: Plan, step: Step) -> str:
    """Hash of everything a step's result depends on that the configuration says (see the module doc)."""
    cfg, w = plan.cfg, plan.cfg["weights"]
    weights = {k: _file_stamp(w[k]) for k in ("hl", "clip", "pristine")}
    weights["ll"] = _file_stamp(w["ll"] if step.weights == MAIN else w["ll_per_pair_weight"][step.weights])
    doc = {"step": step.id, "kind": step.kind, "weights": weights,
           "scoring": {k: v for k, v in flatten(cfg).items() if k.startswith("scoring.") and k in RESULT_SETTINGS},
           "protocol": cfg["protocol"] if step.kind != "features" else None,
           "datasets": [[cfg["datasets"][n], len(plan.datasets[n])] for n in step.datasets]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


def step_done(plan: Plan, step: Step) -> Optional[Dict[str, Any]]:
    """The step's record if it is done with the current settings, else None."""
    try:
        record = json.loads((plan.out / STEPS_DIR / step.record_name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("key") == step_key(plan, step) else None


def _write_record(plan: Plan, step: Step, seconds: float) -> None:
    path = plan.out / STEPS_DIR / step.record_name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({"step": step.id, "key": step_key(plan, step), "seconds": round(seconds, 3),
                                   "images": step.images, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                  indent=1))


def describe_plan(plan: Plan) -> str:
    """The plan as text (``--dry-run``): datasets with their image counts, every step with its status, the weights
    and what is skipped."""
    lines = [f"grepq reproduce: output folder {plan.out}", "", "datasets (images read, from the loaders):"]
    for name, ds in plan.datasets.items():
        lines.append(f"  {name:<14} {len(ds):>7} images  {ds.name} ({ds.polarity}"
                     f"{', split by scene' if ds.is_synthetic else ''})  {ds.root}")
    todo = [s for s in plan.steps if step_done(plan, s) is None]
    lines += ["", f"steps ({len(plan.steps)}; {len(todo)} to run, {len(plan.steps) - len(todo)} done before):"]
    for i, s in enumerate(plan.steps, 1):
        what = f"{s.images} images" if s.kind == "features" else f"Table {s.table}"
        lines.append(f"  {i:>3}. {s.id:<34} {what:<14} {'to run' if s in todo else 'done'}")
    lines += ["", "weights:"] + [f"  {k:<14} {p}" for k, p in weight_files(plan).items()]
    if plan.cfg["output"]["cache"] is None:
        lines.append("  (output.cache is null: features are extracted again by every step that needs them)")
    lines += ["", f"skipped ({len(plan.skipped)}):"] + [f"  {item}: {why}" for item, why in plan.skipped]
    if not plan.skipped:
        lines.append("  nothing")
    lines += ["", f"problems the run would fail on ({len(plan.problems)}):"]
    lines += [f"  {why}" for why in plan.problems] or ["  none"]
    return "\n".join(lines) + "\n"


def _run_step(plan: Plan, step: Step, scorer) -> None:
    from . import runner
    cfg, out, feats = plan.cfg, plan.out, feature_options(plan.cfg)
    ds = [plan.datasets[n] for n in step.datasets]
    plots = cfg["output"]["plots"]
    if step.kind == "features":
        runner.dataset_features(scorer, ds[0], feats)
    elif step.kind == "zeroshot":
        runner.run_zero_shot(scorer, ds[0], out, feats, plots=plots)
    elif step.kind == "cross_dataset":
        runner.run_cross_dataset(scorer, ds[0], ds[1], out, regression_settings(cfg), feats)
    else:
        if step.table == 4:
            feats = dataclasses.replace(feats, feature_sets=("ll",))
        runner.run_data_efficient(scorer, ds[0], out, regression_settings(cfg), feats, plots=plots,
                                  pair_weight=None if step.table != 4 else step.weights)


class _Scorers(dict):
    """weights ("main" or a Table-4 pair weight) -> scorer, built when first asked for; Table 4's score LL only."""

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__()
        self.cfg = cfg

    def __missing__(self, weights: str):
        if weights == MAIN:
            self[weights] = scorer_from_config(self.cfg)
        else:
            self[weights] = scorer_from_config(self.cfg, self.cfg["weights"]["ll_per_pair_weight"][weights],
                                               components=["ll"])
        return self[weights]


def _run_steps(plan: Plan, scorers: _Scorers) -> Dict[str, Dict[str, Any]]:
    """Every step not done, in order; returns the timings. The progress bar counts images to extract plus one per
    table step, so its ETA follows the feature extraction, which dominates the run."""
    cost = {s.id: (s.images if s.kind == "features" else 1) for s in plan.steps}
    timings: Dict[str, Dict[str, Any]] = {}
    bar = tqdm(total=sum(cost.values()), desc="reproduce", unit="img", file=sys.stderr,
               disable=not plan.cfg["output"]["progress"],
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    try:
        for i, step in enumerate(plan.steps, 1):
            record = step_done(plan, step)
            if record is not None:
                timings[step.id] = {"status": "done before", "seconds": record.get("seconds")}
            else:
                bar.set_postfix_str(f"step {i}/{len(plan.steps)} {step.id}")
                t0 = time.perf_counter()
                _run_step(plan, step, scorers[step.weights])
                seconds = time.perf_counter() - t0
                _write_record(plan, step, seconds)
                timings[step.id] = {"status": "ran", "seconds": round(seconds, 3)}
                tqdm.write(f"grepq reproduce: {step.id} done in {seconds:.1f} s", file=sys.stderr)
            bar.update(cost[step.id])
    finally:
        bar.close()
    return timings


def settings_differing_from_paper(cfg: Dict[str, Any]) -> List[str]:
    """Result-changing settings (:data:`RESULT_SETTINGS`) that are not the paper's: a paper key set to another value,
    or a key whose value comes from the official code or grepq, with its note."""
    flat, defaults = flatten(cfg, schema=REPRODUCE_SCHEMA), REPRODUCE_SCHEMA.flat
    out = []
    for key in RESULT_SETTINGS:
        spec, value = defaults[key], flat[key]
        if spec.source == "paper" and value != spec.default:
            out.append(f"`{key}` = `{value}`: changed from the paper's `{spec.default}` ({spec.doc})")
        elif spec.source != "paper" and value is not None:
            out.append(f"`{key}` = `{value}` [{spec.source}]: {spec.doc}")
    return out


def run_info(plan: Plan, fingerprints: Dict[str, Any], timings: Dict[str, Any], seconds: float) -> Dict[str, Any]:
    """Versions, weights fingerprints, dataset counts, skipped items, timings and the configuration."""
    import numpy
    import scipy
    import sklearn
    import torch
    return {
        "grepq": __version__, "git_revision": git_revision(), "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
        "sklearn": sklearn.__version__, "cuda": torch.version.cuda,
        "fingerprints": fingerprints,
        "datasets": {n: {"name": d.name, "root": str(d.root), "images": len(d), "polarity": d.polarity,
                         "split_by_scene": d.is_synthetic} for n, d in plan.datasets.items()},
        "skipped": [{"item": i, "reason": r} for i, r in plan.skipped],
        "steps": timings, "seconds_total": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": plan.cfg,
    }


def render_report(plan: Plan, tables_text: str, info: Dict[str, Any]) -> str:
    """report.md: datasets, skipped items, settings that differ from the paper, the tables, plots, timings."""
    lines = ["# GRepQ: the paper's tables reproduced", "",
             f"grepq {info['grepq']}, torch {info['torch']}, finished {info['finished']}; weights fingerprints and "
             "versions in `run_info.json`.", "", "## Datasets", "", "| entry | dataset | images | root |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {d['name']} | {d['images']} | `{d['root']}` |" for n, d in info["datasets"].items()]
    lines += ["", f"## Skipped ({len(plan.skipped)})", ""]
    lines += [f"- {i}: {r}" for i, r in plan.skipped] or ["Nothing was skipped."]
    lines += ["", "## Settings that differ from the paper", "",
              "Paper settings changed here, and settings the paper does not give (or gives otherwise) whose value "
              "is the official code's or grepq's choice; each with its note:", ""]
    lines += [f"- {s}" for s in settings_differing_from_paper(plan.cfg)] or ["None."]
    lines += [""] + [("#" + t if t.startswith("#") else t) for t in tables_text.split("\n")] + ["## Plots", ""]
    lines += [f"- [{p.name}]({p.name})" for p in sorted(plan.out.glob("*.png"))] or ["No plots."]
    lines += ["", "## Timings", "", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v['status']} | {v['seconds']} |" for k, v in info["steps"].items()]
    lines += ["", f"Total: {info['seconds_total']} s.", ""]
    return "\n".join(lines)


def run_reproduce(cfg: Dict[str, Any], dry_run: bool = False, log=None) -> Dict[str, Any]:
    """Plan, then (unless ``dry_run``) run every step not done and write the report. A plan with problems raises
    :class:`PlanError` after logging the plan, dry run or not.

    Returns {"plan": Plan, "plan_text": str}, plus, unless ``dry_run``, "tables" (Markdown), "report" (path of
    report.md), "run_info" (the run_info.json dict) and "unreadable" (result files left out: (path, why)).
    """
    log = log or (lambda text: print(text, file=sys.stderr))
    plan = make_plan(cfg)
    text = describe_plan(plan)
    log(text)
    if plan.problems:
        raise PlanError(f"{len(plan.problems)} problem(s) found before any work, nothing was computed: "
                        + "; ".join(plan.problems))
    if dry_run:
        return {"plan": plan, "plan_text": text}
    from .plots import plot_srcc_vs_labels
    from .tables import render_all
    t0 = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    scorers = _Scorers(cfg)
    timings = _run_steps(plan, scorers)
    # every weights used, also when their steps were done before
    fingerprints = {w: scorers[w].fingerprints() for w in dict.fromkeys(s.weights for s in plan.steps)}
    tables_text, loaded = render_all(plan.out)
    for path, why in loaded.unreadable:
        log(f"grepq reproduce: warning: {path} is not in the tables: {why}")
    de_rows = [r for r in loaded.rows if r.get("protocol") == "data_efficient"]
    if de_rows and cfg["output"]["plots"]:
        plot_srcc_vs_labels(de_rows, str(plan.out / "srcc_vs_labels.png"))
    info = run_info(plan, fingerprints, timings, time.perf_counter() - t0)
    (plan.out / "run_info.json").write_text(json.dumps(info, indent=1, default=str) + "\n", encoding="utf-8")
    report = plan.out / "report.md"
    report.write_text(render_report(plan, tables_text, info), encoding="utf-8")
    for item, why in plan.skipped:
        log(f"grepq reproduce: skipped {item}: {why}")
    return {"plan": plan, "plan_text": text, "tables": tables_text, "report": report, "run_info": info,
            "unreadable": loaded.unreadable}
