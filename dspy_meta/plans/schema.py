"""The dict form of plans as pydantic models: the one source of the plan grammar.

The models check the shape (a discriminated union on ``op``, no unknown keys, types), and, given
a validation context (``library``, ``limits``), the meaning: refs name a library optimizer,
overrides only lower numeric budgets, kinds and parameters exist, best_of has 2 to
``max_branches`` branches. `plan_grammar` renders the grammar the meta LM is shown from the same
models, and `plan_error` turns pydantic's errors into the one-line reason (with its JSON path)
that is logged and fed back to the meta LM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator,
)

from dspy_meta.errors import PlanError
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.runtime.schema import describe_error, error_path, invalid

__all__ = ["OptimizeModel", "SequenceModel", "BestOfModel", "TransformModel", "EnsembleModel", "NodeModel",
           "plan_grammar", "plan_error", "OPS"]


def _placeholder(text: str, *, forms: tuple[str, ...] = ("ref", "kind"), required: bool = False) -> dict:
    return {"placeholder": text, "forms": list(forms), "required": required}


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OptimizeModel(_Node):
    """Run one inner optimizer: a library optimizer by ``ref``, or a ``kind`` with its settings."""

    op: Literal["optimize"]
    ref: str | None = Field(None, json_schema_extra=_placeholder("NAME", forms=("ref",), required=True))
    kind: str | None = Field(None, json_schema_extra=_placeholder("KIND", forms=("kind",), required=True))
    params: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_placeholder(
        "{...optional: lower numeric budgets only}", forms=("ref",)))
    prompts: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_placeholder("{...}", forms=("kind",)))
    label: str | None = Field(None, json_schema_extra=_placeholder("TEXT", forms=("kind",)))
    _spec: OptimizerSpec | None = PrivateAttr(None)

    @field_validator("ref")
    @classmethod
    def _known_ref(cls, ref: str | None, info: ValidationInfo) -> str | None:
        library = (info.context or {}).get("library") or {}
        if ref is not None and ref not in library:
            raise invalid("plan", f"unknown optimizer {ref!r}; available: {sorted(library)}")
        return ref

    @model_validator(mode="after")
    def _build_spec(self, info: ValidationInfo) -> OptimizeModel:
        context = info.context or {}
        library, limits = context.get("library") or {}, context.get("limits")
        if self.ref is not None:
            extra = sorted(k for k in ("kind", "prompts", "label") if k in self.model_fields_set)
            if extra:
                raise invalid("plan", f"unknown key(s) {extra} beside 'ref'")
            base = library[self.ref]
            params = self.params
            if limits is not None and limits.cap_overrides:
                params = _check_capped(params, base, self.ref, context.get("repairs"))
            try:
                self._spec = base.with_params(**params) if params else base
            except ValueError as exc:
                raise invalid("plan_at", str(exc), at="params") from None
            return self
        if self.kind is None:
            raise invalid("plan", "missing key(s) ['kind'] (or 'ref' to use a named optimizer)")
        if limits is not None and limits.refs_only:
            raise invalid("plan", 'use an available optimizer by name, {"op": "optimize", "ref": NAME}; '
                                  f"available: {sorted(library)}")
        data = {k: getattr(self, k) for k in ("kind", "params", "prompts", "label") if k in self.model_fields_set}
        try:
            self._spec = OptimizerSpec.from_dict(data)
        except ValueError as exc:
            raise invalid("plan", str(exc)) from None
        return self

    @property
    def spec(self) -> OptimizerSpec:
        return self._spec


def _check_capped(params: Mapping, spec: OptimizerSpec, ref: str, repairs: list | None) -> dict[str, Any]:
    """`params` that lower numeric budgets only. Given a `repairs` list, a raised budget is clamped to
    the cap (and the clamp noted there) instead of refused."""
    checked = dict(params)
    for name, value in params.items():
        current = spec.params.get(name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and isinstance(current, (int, float)) and not isinstance(current, bool):
            if value > current:
                if repairs is None:
                    raise invalid("plan_at", f"may lower the optimizer's budget ({current}) but not raise it "
                                             f"(got {value})", at=f"params.{name}")
                checked[name] = current
                repairs.append(f"{ref}.params.{name}: {value} is over the budget, lowered to {current}")
        elif name in spec.params and value != current:
            raise invalid("plan_at", f"only numeric budgets may be overridden (keep {current!r})",
                          at=f"params.{name}")
    return checked


class SequenceModel(_Node):
    """Run steps one after another, each on the program the previous step returned."""

    op: Literal["sequence"]
    steps: list[NodeModel] = Field(min_length=1, json_schema_extra=_placeholder("[node, ...]", required=True))


class BestOfModel(_Node):
    """Run every branch from the same program and keep the one that scores best on validation."""

    op: Literal["best_of"]
    branches: list[NodeModel] = Field(json_schema_extra=_placeholder("[node, node, ...]", required=True))

    @field_validator("branches")
    @classmethod
    def _branch_count(cls, branches: list, info: ValidationInfo) -> list:
        limits = (info.context or {}).get("limits")
        most = limits.max_branches if limits is not None else 4
        if not 2 <= len(branches) <= most:
            raise invalid("plan", f"best_of needs 2 to {most} branches, got {len(branches)}")
        return branches


def _check_structure_allowed(info: ValidationInfo, op: str) -> None:
    limits = (info.context or {}).get("limits")
    if limits is not None and not getattr(limits, "structure", True):
        raise invalid("plan", f'"op": "{op}" is not allowed here: this run keeps the program\'s class (structure '
                              'is off), so a plan may only use optimize, sequence and best_of')


class TransformModel(_Node):
    """Put structure around the program so far (see `dspy_meta.programs`); no optimizer runs."""

    op: Literal["transform"]
    kind: str = Field(json_schema_extra=_placeholder("TRANSFORM", required=True))
    params: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_placeholder("{...optional}"))
    _settings: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _known_transform(self, info: ValidationInfo) -> TransformModel:
        from dspy_meta.programs import available_transforms, get_transform

        _check_structure_allowed(info, "transform")
        kinds = [k for k in available_transforms() if k != "ensemble"]
        if self.kind not in kinds:
            raise invalid("plan", f"unknown transform {self.kind!r}; available: {kinds}")
        try:
            self._settings = get_transform(self.kind).check_params(self.params)
        except ValueError as exc:
            raise invalid("plan_at", str(exc), at="params") from None
        return self

    @property
    def settings(self) -> dict[str, Any]:
        return self._settings


class EnsembleModel(_Node):
    """Run 2 to 4 member plans from the same program; their programs answer together by vote."""

    op: Literal["ensemble"]
    members: list[NodeModel] = Field(json_schema_extra=_placeholder("[node, node, ...]", required=True))

    @field_validator("members")
    @classmethod
    def _member_count(cls, members: list, info: ValidationInfo) -> list:
        _check_structure_allowed(info, "ensemble")
        if not 2 <= len(members) <= 4:
            raise invalid("plan", f"an ensemble needs 2 to 4 members, got {len(members)}")
        return members


NodeModel = Annotated[Union[OptimizeModel, SequenceModel, BestOfModel, TransformModel, EnsembleModel],
                      Field(discriminator="op")]
OPS = {"optimize": OptimizeModel, "sequence": SequenceModel, "best_of": BestOfModel, "transform": TransformModel,
       "ensemble": EnsembleModel}
for _model in (SequenceModel, BestOfModel, EnsembleModel):
    _model.model_rebuild()


def plan_error(exc: ValidationError, root: str = "plan") -> PlanError:
    """The first of pydantic's errors as a `PlanError` naming its JSON path."""
    error = exc.errors()[0]
    loc = tuple(part for part in error["loc"] if part not in OPS)  # drop the union's tags
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return PlanError(f"{error_path(loc + ('op',), root)}: must be one of {list(OPS)}, got {ctx.get('tag')!r}")
    if kind == "model_attributes_type" or (kind in ("model_type", "dict_type") and not loc):
        return PlanError(f"{error_path(loc, root)}: a plan node must be an object, got "
                         f"{type(error.get('input')).__name__}")
    if kind == "missing":
        return PlanError(f"{error_path(loc[:-1], root)}: missing key(s) {[loc[-1]]}")
    if kind == "extra_forbidden":
        node = OPS.get(next((p for p in reversed(error["loc"]) if p in OPS), "optimize"))
        return PlanError(f"{error_path(loc[:-1], root)}: unknown key(s) {[loc[-1]]}; allowed: "
                         f"{sorted(node.model_fields)}")
    if kind == "plan_at":
        return PlanError(f"{error_path(loc + tuple(ctx['at'].split('.')), root)}: {error['msg']}")
    if kind == "too_short" and ctx.get("min_length") == 1:
        return PlanError(f"{error_path(loc, root)}: must be a non-empty list")
    detail = error["msg"] if kind == "plan" else describe_error(error)
    return PlanError(f"{error_path(loc, root)}: {detail}")


def plan_grammar(names: list[str], limits, example: dict | None = None) -> str:
    """The plan grammar the meta LM is shown, rendered from the models' fields.

    With ``limits.refs_only`` only the by-name form of ``optimize`` is shown.
    """
    lines = ["A node is one of:"]
    forms = [("optimize", "ref")] + ([] if limits.refs_only else [("optimize", "kind")])
    forms += [("sequence", None), ("best_of", None)]
    if getattr(limits, "structure", True):
        forms += [("transform", None), ("ensemble", None)]
    for op, form in forms:
        parts = [f'"op": "{op}"']
        for name, info in OPS[op].model_fields.items():
            extra = info.json_schema_extra or {}
            if name == "op" or (form is not None and form not in extra.get("forms", ())):
                continue
            if form is None or extra.get("required") or name == "params":
                parts.append(f'"{name}": {extra["placeholder"]}')
        line = "  {" + ", ".join(parts) + "}"
        if op == "best_of":
            line += f"  (2 to {limits.max_branches} branches)"
        if op == "ensemble":
            line += "  (2 to 4 members; their programs vote)"
        lines.append(line)
    if getattr(limits, "structure", True):
        lines.append(_transform_menu())
    lines.append(f"At most {limits.max_steps} optimize nodes and {limits.max_depth} levels of nesting, and at most "
                 f"{limits.max_calls_factor} x the program's LM calls per example. No other keys.")
    lines.append(f"Available names: {names}")
    if example is not None:
        import json

        lines.append(f"Example:\n{json.dumps(example, indent=1, ensure_ascii=False)}")
    return "\n".join(lines)


def _transform_menu() -> str:
    from dspy_meta.programs import available_transforms, get_transform

    lines = ["TRANSFORM is one of (a transform changes the program's structure; optimizers after it tune it):"]
    for kind in available_transforms():
        if kind == "ensemble":
            continue
        transform = get_transform(kind)
        params = ", ".join(f"{name}: {t.__name__} {low}..{high}" if t is not str else f"{name}: text"
                           for name, (t, low, high, _) in transform.params.items())
        lines.append(f"  {kind} ({params}): {transform.description}")
    return "\n".join(lines)
