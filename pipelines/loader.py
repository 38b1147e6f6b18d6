"""Loading pipeline YAML with positions, so every problem names its file, line, column and stage.

PyYAML's composer gives the node tree with start marks; the loader builds plain data from it while
recording where each path (``("stages", "write", "timeout")``) came from, validates the data into
the model and maps every problem back to its line and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import PipelineSpecError, SpecProblem
from .spec import Issue, Path, Pipeline, _dotted, _message, find_issues

__all__ = ["load_pipeline", "parse_pipeline", "pipeline_from_data"]

_MAX_BYTES = 1_000_000
# Values built from one document, counting every node an alias expands to: a "billion laughs"
# alias bomb is refused instead of exhausting memory and time.
_MAX_NODES = 200_000


class Positions:
    """Line/column (1-based) of each path's value and, for mapping entries, of its key."""

    def __init__(self) -> None:
        self.values: dict[Path, tuple[int, int]] = {}
        self.keys: dict[Path, tuple[int, int]] = {}

    def find(self, path: Path, *, on_key: bool = False) -> tuple[int | None, int | None]:
        """The position of ``path`` or of its nearest recorded parent."""
        probe = tuple(path)
        while True:
            if on_key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return None, None
            probe = probe[:-1]


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.positions = Positions()
        self.problems: list[SpecProblem] = []
        self._constructor = SafeConstructor()
        self._nodes = 0
        self._open: set[int] = set()  # the collection nodes being built: an alias to one recurses

    def _refuse(self, node: Node, path: Path, message: str) -> PipelineSpecError:
        line, column = _mark(node)
        return PipelineSpecError(
            [
                SpecProblem(
                    message,
                    file=self.file,
                    line=line,
                    column=column,
                    stage=_stage_of(path),
                    field=_dotted(path) or None,
                )
            ]
        )

    def build(self, node: Node, path: Path) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise self._refuse(node, path, f"the document is too large (more than {_MAX_NODES} "
                               "values once its aliases are expanded)")  # fmt: skip
        if id(node) in self._open:
            raise self._refuse(node, path, "recursive YAML alias")
        if not isinstance(node, ScalarNode):
            self._open.add(id(node))
            try:
                return self._build_collection(node, path)
            finally:
                self._open.discard(id(node))
        self.positions.values[path] = _mark(node)
        return self._constructor.construct_object(node, deep=True)

    def _build_collection(self, node: Node, path: Path) -> Any:
        self.positions.values[path] = _mark(node)
        if isinstance(node, MappingNode):
            self._constructor.flatten_mapping(node)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self._refuse(
                        key_node, path, "a key must be a name, not a list or mapping"
                    )
                key = self._constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    # YAML 1.1 reads `on:`/`yes:` as booleans; a key is always a name here,
                    # spelled as written.
                    key = key_node.value if isinstance(key_node, ScalarNode) else str(key)
                child = (*path, key)
                line, column = _mark(key_node)
                if key in result:
                    self.problems.append(
                        SpecProblem(
                            f"duplicate key {key!r}",
                            file=self.file,
                            line=line,
                            column=column,
                            stage=_stage_of(child),
                            field=_dotted(child),
                        )
                    )
                    continue
                self.positions.keys[child] = (line, column)
                result[key] = self.build(value_node, child)
            return result
        assert isinstance(node, SequenceNode)
        return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]


def _stage_of(path: Path) -> str | None:
    if len(path) >= 2 and path[0] == "stages":
        return str(path[1])
    return None


def _problem(
    path: Path, message: str, file: str | None, positions: Positions | None, *, on_key: bool = False
) -> SpecProblem:
    line, column = positions.find(path, on_key=on_key) if positions else (None, None)
    return SpecProblem(
        message,
        file=file,
        line=line,
        column=column,
        stage=_stage_of(path),
        field=_dotted(path) or None,
    )


def pipeline_from_data(
    data: Any,
    *,
    source: str | None = None,
    positions: Positions | None = None,
    known_kinds: Iterable[str] | None = None,
) -> Pipeline:
    """Validate plain data into a :class:`Pipeline`, raising positioned problems."""
    if not isinstance(data, Mapping):
        raise PipelineSpecError(
            [
                _problem(
                    (),
                    "a pipeline file must be a mapping (name, inputs, stages…)",
                    source,
                    positions,
                )
            ]
        )
    if True in data and "on" not in data:  # yaml.safe_load reads the key `on:` as True
        data = {("on" if key is True else key): value for key, value in data.items()}
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        problems = [
            _problem(
                tuple(error["loc"]),
                _message(error),
                source,
                positions,
                on_key=error.get("type") == "extra_forbidden",
            )
            for error in exc.errors()
        ]
        raise PipelineSpecError(problems) from None
    issues: list[Issue] = list(find_issues(pipeline, known_kinds=known_kinds))
    if issues:
        raise PipelineSpecError(
            [_problem(i.path, i.message, source, positions, on_key=i.on_key) for i in issues]
        )
    return pipeline


def parse_pipeline(
    text: str, *, source: str = "<string>", known_kinds: Iterable[str] | None = None
) -> Pipeline:
    """Parse pipeline YAML ``text``; ``source`` names it in errors."""
    if len(text) > _MAX_BYTES:
        raise PipelineSpecError([SpecProblem(f"larger than {_MAX_BYTES} bytes", file=source)])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise PipelineSpecError(
            [
                SpecProblem(
                    f"not valid YAML: {exc.problem or exc.context}",
                    file=source,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from None
    except yaml.reader.ReaderError as exc:
        # A reader error (a NUL or other control character) knows only the character offset.
        offset = exc.position if isinstance(exc.position, int) else 0
        raise PipelineSpecError(
            [
                SpecProblem(
                    f"not valid YAML: unacceptable character #x{exc.character:04x}"
                    if isinstance(exc.character, int)
                    else "not valid YAML: the file is not valid text",
                    file=source,
                    line=text.count("\n", 0, offset) + 1,
                    column=offset - (text.rfind("\n", 0, offset) + 1) + 1,
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineSpecError([SpecProblem(f"not valid YAML: {exc}", file=source)]) from None
    except RecursionError:
        raise PipelineSpecError(
            [SpecProblem("not valid YAML: the document is nested too deeply", file=source)]
        ) from None
    if root is None:
        raise PipelineSpecError([SpecProblem("the file is empty", file=source)])
    builder = _Builder(source)
    try:
        data = builder.build(root, ())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PipelineSpecError(
            [
                SpecProblem(
                    f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                    file=source,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from None
    except RecursionError:
        raise PipelineSpecError(
            [SpecProblem("the document is nested too deeply", file=source)]
        ) from None
    if builder.problems:
        raise PipelineSpecError(builder.problems)
    return pipeline_from_data(
        data, source=source, positions=builder.positions, known_kinds=known_kinds
    )


def load_pipeline(path: str | FilePath, *, known_kinds: Iterable[str] | None = None) -> Pipeline:
    """Load and validate the pipeline file at ``path``."""
    file = FilePath(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PipelineSpecError([SpecProblem("no such file", file=str(path))]) from None
    except IsADirectoryError:
        raise PipelineSpecError(
            [SpecProblem("is a directory, not a file", file=str(path))]
        ) from None
    except OSError as exc:
        raise PipelineSpecError(
            [SpecProblem(f"cannot read: {exc.strerror}", file=str(path))]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineSpecError(
            [SpecProblem(f"not UTF-8 text (byte {exc.start})", file=str(path))]
        ) from None
    return parse_pipeline(text, source=str(path), known_kinds=known_kinds)
