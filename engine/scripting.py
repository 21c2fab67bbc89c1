"""The restricted script engine for diagram scripts and expressions.

Diagrams are deployed by department admins, so every script task, pre/post script,
sequence-flow condition, timer expression, multi-instance expression and DMN cell is
untrusted code. This module compiles it with RestrictedPython plus a stricter policy of
our own and runs it with guards that only let it manipulate JSON-like task data:

* compile time (also used at deploy time by ``check_expression``/``check_script``):
  no imports, no classes, no ``try`` (a script must not be able to swallow the budget
  error), no names or attributes starting with ``_``, and a deny-list of introspection
  and code-loading builtins (``eval``, ``open``, ``getattr``, ``type`` ...);
* run time: only the builtins in ``SAFE_BUILTINS`` plus the platform functions the
  caller passes in; attribute access only on JSON-like values (so a platform
  function's own attributes are out of reach); in-place writes only to dicts and
  lists; operators that can build huge values (``*``, ``**``, ``<<``, ``+``, ``%``
  formatting, format widths, string padding) are size-checked;
* a step budget: every bytecode instruction executed in script code is counted through
  ``sys.settrace`` (per thread, so it works under Flask's threaded server) and the run
  stops with ``ScriptBudgetExceeded`` past ``max_steps`` or ``max_seconds``; the time
  spent inside platform functions (a file made durable, a lock waited for) is not the
  script's, but counts toward ``max_total_seconds``, the engine call's scripts together.

Nothing here imports SpiffWorkflow: ``RestrictedEnvironment`` has the duck-typed
``evaluate``/``execute`` interface of SpiffWorkflow's script environments, and
``engine.spiff_adapter`` plugs it into the workflow engine.

One C-level operation is never interrupted by the budget, and it holds the whole
process (the GIL): so what one operation may build is size-checked (above), and what one
operation may walk — comparing, hashing, sorting, turning into text — is weighed first
(``_weigh``: every item reached, a shared one each time), refused past ``MAX_WALK``:
forty levels of a list holding itself twice are a few kilobytes and 2**40 comparisons.

Memory: what one operation builds is size-checked, and what the scripts of one engine
call build together is watched. Every ``MEMORY_CHECK_STEPS`` steps the process's resident
memory is read (``/proc/self/statm``, two microseconds) and the script stops past
``MAX_SCRIPT_MEMORY`` more than when the call began (a loop copying a million-item list
reached 0.9 GB within its second before this). The figure is the process's, so another
thread's growth meanwhile counts too (a script running beside one that builds half a
gigabyte is stopped with it): the limit is set far above what any procedure's data needs.
Where ``/proc`` is missing (not Linux) memory is not watched.

No generator: a generator closed by the garbage collector runs its frame in a finaliser,
where the budget's error is ignored and Python removes the tracer; ``yield`` is refused
and a generator expression runs as a list comprehension.

What this does not bound: a C-level operation not yet thought of. Running diagram code in
a separate process with a hard time and memory limit would; it is not done (README, Known
gaps).
"""
from __future__ import annotations

import ast
import contextlib
import functools
import math
import operator
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence, safer_getattr_raise

#: Code objects compiled here carry this file name; the tracer counts only their frames.
SCRIPT_FILENAME = "<bpmn-script>"

#: Largest string/list/tuple a guarded operation may build, in items.
MAX_SEQUENCE = 1_000_000
#: Largest integer a guarded ``**``/``<<`` may build, in bits.
MAX_INT_BITS = 65_536
#: Largest ``range`` a script may build.
MAX_RANGE = 100_000
#: Most values (counting every list item and dict value) and nesting levels task data
#: may hold after a script.
#: Text a task's data may hold in all (its JSON is stored with every save).
MAX_DATA_CHARS = 4_000_000
MAX_DATA_VALUES = 1_000_000
MAX_DATA_DEPTH = 64
#: How much more resident memory the process may hold while the scripts of one engine call
#: run than when it began (what they build, with what other threads took meanwhile).
MAX_SCRIPT_MEMORY = 512 * 1024 * 1024
#: Steps between two readings of resident memory (two microseconds each): a guarded
#: operation builds at most about 8 MB (``MAX_SEQUENCE`` references), so the limit is passed
#: by about 256 MB at most, by what the guards bound.
MEMORY_CHECK_STEPS = 32
#: Default step budget (bytecode instructions in script frames) and wall-time budget.
#: The longest script or expression a diagram may hold, and the longest kept compiled.
MAX_SCRIPT_CHARS = 65_536
CACHED_CHARS = 4_096
DEFAULT_MAX_STEPS = 1_000_000
DEFAULT_MAX_SECONDS = 1.0

#: Names refused at compile time, whatever the context: code loading, introspection,
#: reflection and I/O. (Names starting with ``_`` are refused by RestrictedPython.)
DENIED_NAMES = frozenset({
    "eval", "exec", "compile", "open", "input", "breakpoint", "help", "exit", "quit",
    "globals", "locals", "vars", "dir", "getattr", "setattr", "delattr", "hasattr",
    "type", "object", "super", "classmethod", "staticmethod", "property", "memoryview",
    "bytearray", "bytes", "format", "print", "printed", "builtins",
})


class ScriptRefused(Exception):
    """The text is not an acceptable script/expression (syntax or policy).

    ``syntax`` tells a plain syntax error apart from a policy refusal: SpiffWorkflow's
    DMN engine probes cell texts for syntax to decide whether to prepend ``==``.
    """

    def __init__(self, message: str, *, syntax: bool = False):
        super().__init__(message)
        self.message = message
        self.syntax = syntax


class ScriptError(Exception):
    """A guard refused an operation while a script ran."""


class ScriptBudgetExceeded(ScriptError):
    """The script ran past its step or time budget."""


# --- guarded builtins -----------------------------------------------------------------

def _safe_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise ScriptError(f"range of {len(result)} items is too large (limit {MAX_RANGE})")
    return result


def _safe_sum(values: Iterable[Any], start: Any = 0) -> Any:
    # sum() over lists/strings is quadratic C-level work the step budget cannot see.
    if not isinstance(start, (int, float)):
        raise ScriptError("sum() only adds numbers")
    return sum(values, start)


#: The largest number of items (counting every item of every container reached, a shared
#: one each time, and every character of text) one C-level operation may walk: comparing,
#: hashing, sorting or turning into text. The step budget counts bytecode instructions
#: and cannot interrupt one such operation, which holds the whole process (the GIL): two
#: lists each holding the other twice, forty levels deep, take a few kilobytes and 10^12
#: comparisons. Bounding what one operation may walk bounds its time.
MAX_WALK = MAX_SEQUENCE
_CONTAINERS = (list, tuple, dict, set, frozenset)
_SCALARS = (int, float, bool, type(None))
#: ``round`` of an integer to -n digits computes 10**n: n is bounded like int() of text.
MAX_ROUND_DIGITS = 4_300


def _walked(value: Any, textual: bool) -> bool:
    """Whether ``_weigh`` looks into an item: a container, or a long integer about to be written."""
    return not isinstance(value, _SCALARS) or (textual and isinstance(value, int) and value.bit_length() > 64)


def _weigh(value: Any, what: str, *, textual: bool = False) -> int:
    """How much ``value`` makes one C-level operation walk, refused past ``MAX_WALK``.
    ``textual``: the value is about to become text, so it must be JSON-like (a platform
    function's text would show the platform's own objects)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(k for k in item if _walked(k, textual))
            stack.extend(v for v in item.values() if _walked(v, textual))
        elif isinstance(item, _CONTAINERS):
            total += len(item)
            stack.extend(v for v in item if _walked(v, textual))
        elif isinstance(item, int) and textual:
            total += item.bit_length() // 3  # a long integer's decimal digits, each worked out and written
        elif textual and not isinstance(item, _SCALARS):
            raise ScriptError(f"{what}: a {type(item).__name__} cannot be turned into text")
        if total > MAX_WALK:
            raise ScriptError(f"{what}: value too large (more than {MAX_WALK} items to walk)")
    return total


def _operand(value: Any) -> Any:
    """A value compared or hashed (``==``, ``<``, ``in``, a dict key, a set item): weighed
    when it is a container (scalars compare in constant time)."""
    if isinstance(value, _CONTAINERS):
        _weigh(value, "comparison")
    return value


def _materialised(value: Any) -> Any:
    """An iterable that is no container (a generator, ``zip``, ``map``, a dict's view, a
    ``range``) as a list, so that what a C-level function would take from it can be
    weighed first; anything else as it is."""
    if isinstance(value, (str, bytes, *_CONTAINERS)) or callable(value) or not isinstance(value, Iterable):
        return value
    return list(value)


def _weighed(value: Any, what: str) -> Any:
    """A value whose items a C-level function is about to compare or hash: an iterator
    made a list (``_materialised``), and a container weighed."""
    value = _materialised(value)
    if isinstance(value, _CONTAINERS):
        _weigh(value, what)
    return value


def _weighed_arguments(name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The arguments of a call that compares or hashes their items, each ``_weighed``."""
    return tuple(_weighed(a, name) for a in args), {k: _weighed(v, name) for k, v in kwargs.items()}


def _items(value: Any) -> Any:
    """What ``{*value}`` hashes."""
    return _weighed(value, "{*items}")


def _weighing(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A builtin function that compares the items of its arguments (sorted, min, max),
    with each argument weighed first."""
    def guarded(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _weighed_arguments(name, args, kwargs)
        return function(*args, **kwargs)
    return guarded


class _GuardedType(type):
    """A builtin type a script calls through a guard and still names in ``isinstance``
    (``str(x)`` is weighed and must be JSON-like; ``set(x)`` and ``dict(x)`` hash what
    they are given). Scripts cannot reach its attributes: it is no JSON-like value."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.real)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.real is str:
            for value in (*args[:1], *kwargs.values()):
                _weigh(value, "str()", textual=True)
        else:
            args, kwargs = _weighed_arguments(f"{cls.real.__name__}()", args, kwargs)
        return cls.real(*args, **kwargs)


def _guarded_type(real: type) -> type:
    return _GuardedType(real.__name__, (), {"real": real})


def _safe_zip(*iterables: Any, **kwargs: Any) -> Any:
    """``zip`` whose tuples together hold at most ``MAX_SEQUENCE`` items: ``zip(*rows)``
    over two hundred million-item lists is one call building 1.6 GB."""
    iterables = tuple(_materialised(i) for i in iterables)
    shortest = min((len(i) for i in iterables if hasattr(i, "__len__")), default=0)
    if shortest * len(iterables) > MAX_SEQUENCE:
        raise ScriptError(f"zip() result too large (limit {MAX_SEQUENCE} items)")
    return zip(*iterables, **kwargs)


def _safe_round(number: Any, ndigits: Any = None) -> Any:
    if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
        raise ScriptError(f"round() to {ndigits} digits is not allowed (limit {MAX_ROUND_DIGITS})")
    return round(number, ndigits)


SAFE_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False,
    "len": len, "min": _weighing(min, "min()"), "max": _weighing(max, "max()"), "sum": _safe_sum,
    "sorted": _weighing(sorted, "sorted()"), "range": _safe_range, "str": _guarded_type(str), "int": int,
    "float": float, "bool": bool, "list": list, "dict": _guarded_type(dict), "set": _guarded_type(set), "tuple": tuple,
    "round": _safe_round, "abs": abs, "any": any, "all": all, "enumerate": enumerate, "zip": _safe_zip,
    "isinstance": isinstance,
}

#: Types whose (public) attributes a script may read: the JSON-like values task data
#: holds, plus the containers scripts build on the way.
_ATTRIBUTE_TYPES = frozenset({dict, list, tuple, set, frozenset, str, int, float, bool, type(None)})
#: Types a script may modify in place (``d["k"] = v``, ``del xs[0]``).
_WRITABLE_TYPES = frozenset({dict, list})


def _bounded_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_SEQUENCE:
        raise ScriptError(f"{what} width {width} is too large (limit {MAX_SEQUENCE})")


def _padding_method(method: Callable[..., str], name: str) -> Callable[..., str]:
    def guarded(width: Any, *args: Any) -> str:
        _bounded_width(width, f"str.{name}")
        return method(width, *args)
    return guarded


def _guarded_getattr(obj: Any, name: str) -> Any:
    if type(obj) not in _ATTRIBUTE_TYPES:
        raise ScriptError(f"attribute access on {type(obj).__name__} values is not allowed")
    value = safer_getattr_raise(obj, name)
    if isinstance(obj, str):
        if name in ("center", "ljust", "rjust", "zfill"):
            return _padding_method(value, name)
        if name == "expandtabs":
            def expandtabs(tabsize: int = 8) -> str:
                _bounded_width(len(obj) + obj.count("\t") * tabsize, "str.expandtabs")
                return obj.expandtabs(tabsize)
            return expandtabs
        if name == "replace":
            def replace(old: str, new: str, count: int = -1) -> str:
                hits = obj.count(old) if count < 0 else min(count, obj.count(old))
                if len(obj) + hits * (len(new) - len(old)) > MAX_SEQUENCE:
                    raise ScriptError(f"str.replace result too large (limit {MAX_SEQUENCE})")
                return obj.replace(old, new, count)
            return replace
        if name == "join":
            def join(items: Iterable[Any]) -> str:
                items = list(items)
                if sum(len(i) for i in items if isinstance(i, str)) + len(obj) * len(items) > MAX_SEQUENCE:
                    raise ScriptError(f"str.join result too large (limit {MAX_SEQUENCE})")
                return obj.join(items)
            return join
        if name == "translate":
            def translate(table: Any) -> str:
                longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1) \
                    if isinstance(table, dict) else 1
                _bounded_width(len(obj) * longest, "str.translate result")
                return obj.translate(table)
            return translate
    if isinstance(obj, int) and name == "to_bytes":
        def to_bytes(length: Any = 1, *args: Any, **kwargs: Any) -> bytes:
            _bounded_width(length, "int.to_bytes")
            return obj.to_bytes(length, *args, **kwargs)
        return to_bytes
    if isinstance(obj, list) and name == "extend":
        def extend(items: Iterable[Any]) -> None:
            items = list(items)
            if len(obj) + len(items) > MAX_SEQUENCE:
                raise ScriptError(f"list too large (limit {MAX_SEQUENCE})")
            obj.extend(items)
        return extend
    if isinstance(obj, _CONTAINERS) and callable(value):
        # Methods compare or hash their arguments (count, index, remove, a dict key, a set
        # item) and, for count/index/remove/sort, the container's own items.
        method = value

        def weighed(*args: Any, **kwargs: Any) -> Any:
            if name in ("count", "index", "remove", "sort"):
                _weigh(obj, f"{type(obj).__name__}.{name}")
            args, kwargs = _weighed_arguments(f"{type(obj).__name__}.{name}", args, kwargs)
            return method(*args, **kwargs)
        return weighed
    return value


def _guarded_write(obj: Any) -> Any:
    if type(obj) not in _WRITABLE_TYPES:
        raise ScriptError(f"{type(obj).__name__} values cannot be modified")
    return _ListWrite(obj) if type(obj) is list else obj


class _ListWrite:
    """A list as a script writes into it (``x[i] = v``, ``x[a:b] = y``, ``del x[i]``): a
    slice assignment is one C-level operation that can double a list (``x[len(x):] = x``),
    so the list it leaves is size-checked first, as ``+`` and ``extend`` are."""

    __slots__ = ("_list",)

    def __init__(self, items: list) -> None:
        object.__setattr__(self, "_list", items)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"'list' object has no attribute '{name}'")  # as the list itself says

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, slice):
            if not hasattr(value, "__iter__"):
                raise TypeError("can only assign an iterable")
            value = list(value)
            if len(self._list) - len(range(*key.indices(len(self._list)))) + len(value) > MAX_SEQUENCE:
                raise ScriptError(f"list too large (limit {MAX_SEQUENCE})")
        self._list[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._list[key]


def _guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[_operand(key)]


def _guarded_getiter(obj: Any) -> Any:
    return iter(obj)


def _guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_SEQUENCES = (str, bytes, list, tuple)
_PERCENT_WIDTHS = re.compile(r"[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_WIDTH = re.compile(r"(\d+)")


def _check_percent_format(template: str) -> None:
    """Each conversion's width and precision bounded. A mapping key is skipped the way
    CPython reads it, to its balanced closing parenthesis (``%(a(b)c)09d`` has width 9)."""
    at = template.find("%")
    while at >= 0:
        at += 1
        if template.startswith("(", at):
            depth = 0
            while at < len(template):
                depth += {"(": 1, ")": -1}.get(template[at], 0)
                at += 1
                if depth == 0:
                    break
        match = _PERCENT_WIDTHS.match(template, at)
        for part in match.groups():
            if part == "*":
                raise ScriptError("'*' widths in % formatting are not allowed")
            if part is not None:
                _bounded_width(int(part), "% format")
        at = template.find("%", match.end() + 1)


def _binop(op: str, left: Any, right: Any) -> Any:
    """The guarded ``+ * ** << %``: refuse results that would exhaust memory or CPU
    inside one C-level operation, where the step budget cannot interrupt."""
    if op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(abs(left).bit_length(), 1) * right > MAX_INT_BITS and abs(left) > 1:
                raise ScriptError(f"integer power too large (limit {MAX_INT_BITS} bits)")
        return left ** right
    if op == "<<":
        if isinstance(left, int) and isinstance(right, int) and left and right + left.bit_length() > MAX_INT_BITS:
            raise ScriptError(f"integer shift too large (limit {MAX_INT_BITS} bits)")
        return left << right
    if op == "*":
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise ScriptError(f"integer product too large (limit {MAX_INT_BITS} bits)")
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(times, int) and times > 0:
                size = len(seq) if isinstance(seq, (str, bytes)) else _weigh(seq, "repetition")
                if size * times > MAX_SEQUENCE:
                    raise ScriptError(f"repeated value too large (limit {MAX_SEQUENCE} items)")
        return left * right
    if op == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            if len(left) + len(right) > MAX_SEQUENCE:
                raise ScriptError(f"concatenated value too large (limit {MAX_SEQUENCE} items)")
        return left + right
    if op == "%":
        if isinstance(left, (str, bytes)):
            _check_percent_format(left if isinstance(left, str) else left.decode("latin-1"))
            _weigh(right, "% format", textual=True)
        return left % right
    raise ScriptError(f"unsupported operator {op}")


_INPLACE = {
    "+=": "+", "*=": "*", "**=": "**", "<<=": "<<", "%=": "%",
    "-=": operator.sub, "/=": operator.truediv, "//=": operator.floordiv,
    ">>=": operator.rshift, "&=": operator.and_, "|=": operator.or_, "^=": operator.xor,
    "@=": operator.matmul,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """``x += y`` and friends; lists are extended in place like plain Python does."""
    action = _INPLACE.get(op)
    if action is None:
        raise ScriptError(f"unsupported operator {op}")
    if isinstance(action, str):
        if op == "+=" and isinstance(target, list):
            _guarded_getattr(target, "extend")(value)
            return target
        return _binop(action, target, value)
    return action(target, value)


def _format_value(value: Any, spec: str, conversion: int) -> str:
    """f-string ``{value!conv:spec}``: the value JSON-like and bounded, the width bounded."""
    _weigh(value, "format", textual=True)
    if conversion == ord("r"):
        value = repr(value)
    elif conversion == ord("s"):
        value = str(value)
    elif conversion == ord("a"):
        value = ascii(value)
    for number in _FORMAT_WIDTH.findall(spec):
        _bounded_width(int(number), "format")
    return format(value, spec)


_GUARDS: dict[str, Any] = {
    "_getattr_": _guarded_getattr,
    "_getitem_": _guarded_getitem,
    "_getiter_": _guarded_getiter,
    "_write_": _guarded_write,
    "_apply_": _guarded_apply,
    "_inplacevar_": _inplacevar,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_binop_": _binop,
    "_format_": _format_value,
    "_operand_": _operand,
    "_items_": _items,
}


# --- compile-time policy --------------------------------------------------------------

_GUARDED_OPS = {ast.Pow: "**", ast.Mult: "*", ast.LShift: "<<", ast.Add: "+", ast.Mod: "%"}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, tightened for diagram code (see the module docstring)."""

    def visit_Import(self, node: ast.Import) -> ast.AST:
        self.error(node, "import is not allowed")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.error(node, "import is not allowed")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed")
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        self.error(node, "try/except is not allowed: errors must stop the procedure")
        return node

    def visit_With(self, node: ast.With) -> ast.AST:
        self.error(node, "with statements are not allowed")
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in DENIED_NAMES:
            self.error(node, f'"{node.id}" is not allowed')
            return node
        return super().visit_Name(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(
            func=ast.Name("_binop_", ast.Load()),
            args=[ast.Constant(symbol), node.left, node.right],
            keywords=[],
        )
        return ast.fix_missing_locations(ast.copy_location(call, node))

    @staticmethod
    def _operand(node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Constant):
            return node
        call = ast.Call(func=ast.Name("_operand_", ast.Load()), args=[node], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        node = self.node_contents_visit(node)
        node.left = self._operand(node.left)
        node.comparators = [self._operand(c) for c in node.comparators]
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node = super().visit_Subscript(node)
        if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
            node.slice = self._operand(node.slice)  # a key written or deleted (a read goes through _getitem_)
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        node = self.node_contents_visit(node)
        node.keys = [None if k is None else self._operand(k) for k in node.keys]
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        node = self.node_contents_visit(node)
        for index, element in enumerate(node.elts):
            if isinstance(element, ast.Starred):  # {*items}: the items are weighed together
                call = ast.Call(func=ast.Name("_items_", ast.Load()), args=[element.value], keywords=[])
                element.value = ast.fix_missing_locations(ast.copy_location(call, element.value))
            else:
                node.elts[index] = self._operand(element)
        return node

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> ast.AST:
        """A generator expression runs as the list comprehension it reads as. A generator
        dropped half-way is closed by the garbage collector, running its frame in a
        finaliser: the budget's error raised there is printed and ignored, and Python
        removes the tracer, so the script would go on unbudgeted. A list serves every use
        a script has for one (``any``, ``sum``, ``sorted``, ``join``)."""
        node = super().visit_GeneratorExp(node)
        return ast.copy_location(ast.ListComp(elt=node.elt, generators=node.generators), node)

    def visit_Yield(self, node: ast.Yield) -> ast.AST:
        self.error(node, "yield is not allowed: a generator's frame may run where the budget cannot stop it")
        return node

    visit_YieldFrom = visit_Yield

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        node = super().visit_SetComp(node)
        node.elt = self._operand(node.elt)
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        node = super().visit_DictComp(node)
        node.key = self._operand(node.key)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = self.node_contents_visit(node)
        call = ast.Call(
            func=ast.Name("_format_", ast.Load()),
            args=[node.value, node.format_spec or ast.Constant(""), ast.Constant(node.conversion)],
            keywords=[],
        )
        node.value = ast.fix_missing_locations(ast.copy_location(call, node))
        node.format_spec = None
        node.conversion = -1
        return node


@dataclass(frozen=True)
class _Compiled:
    code: CodeType | None
    problem: str | None
    syntax: bool


def _compile(text: str, mode: str) -> _Compiled:
    """Compile once per distinct short text: completing a task must not pay for the AST
    transform of every condition again. Longer texts (rare) are compiled each time, so
    the cache stays small however large the diagrams someone validates."""
    if isinstance(text, str) and len(text) <= CACHED_CHARS:
        return _compile_cached(text, mode)
    return _compile_text(text, mode)


@functools.lru_cache(maxsize=4096)
def _compile_cached(text: str, mode: str) -> _Compiled:
    return _compile_text(text, mode)


def _compile_text(text: str, mode: str) -> _Compiled:
    if not isinstance(text, str) or not text.strip():
        return _Compiled(None, "empty expression" if mode == "eval" else "empty script", True)
    if len(text) > MAX_SCRIPT_CHARS:
        return _Compiled(None, f"too long: {len(text)} characters (limit {MAX_SCRIPT_CHARS})", False)
    source = text.strip() if mode == "eval" else text
    try:
        ast.parse(source, SCRIPT_FILENAME, mode)
        compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
        result = compiler(source, filename=SCRIPT_FILENAME, policy=_Policy)
    except SyntaxError as exc:
        return _Compiled(None, f"syntax error on line {exc.lineno}: {exc.msg}", True)
    except (RecursionError, MemoryError, ValueError):  # the parser's or compiler's own limits
        return _Compiled(None, "nested too deeply to compile: split it into simpler statements", False)
    if result.errors:
        return _Compiled(None, "; ".join(result.errors), False)
    return _Compiled(result.code, None, False)


def compile_expression(text: str) -> CodeType:
    """The compiled expression, or ``ScriptRefused``."""
    compiled = _compile(text, "eval")
    if compiled.code is None:
        raise ScriptRefused(compiled.problem or "refused", syntax=compiled.syntax)
    return compiled.code


def compile_script(text: str) -> CodeType:
    """The compiled script, or ``ScriptRefused``."""
    compiled = _compile(text, "exec")
    if compiled.code is None:
        raise ScriptRefused(compiled.problem or "refused", syntax=compiled.syntax)
    return compiled.code


def _unknown_calls(text: str, mode: str, known_functions: Iterable[str]) -> str | None:
    """Calls of a bare name that is neither a builtin, a platform function nor defined
    by the script itself: those can only fail at run time (data holds no callables)."""
    tree = ast.parse(text.strip() if mode == "eval" else text, SCRIPT_FILENAME, mode)
    defined = set(SAFE_BUILTINS) | set(known_functions)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            if isinstance(node, ast.FunctionDef):
                defined.add(node.name)
            args = node.args
            defined.update(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
            defined.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    unknown = sorted({
        node.func.id for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in defined
    })
    if unknown:
        return "unknown function" + ("s " if len(unknown) > 1 else " ") + ", ".join(unknown)
    return None


def check_expression(text: str, known_functions: Iterable[str] | None = None) -> str | None:
    """Deploy-time check of an expression: the problem, or None when it compiles under
    the policy. With ``known_functions`` (the platform's function names), calls to any
    other unknown name are reported too."""
    problem = _compile(text, "eval").problem
    if problem is None and known_functions is not None:
        problem = _unknown_calls(text, "eval", known_functions)
    return problem


def check_script(text: str, known_functions: Iterable[str] | None = None) -> str | None:
    """Deploy-time check of a script; see ``check_expression``."""
    problem = _compile(text, "exec").problem
    if problem is None and known_functions is not None:
        problem = _unknown_calls(text, "exec", known_functions)
    return problem


# --- run time -------------------------------------------------------------------------

class _ResidentMemory:
    """The process's resident memory in bytes, read from ``/proc/self/statm`` through a file
    opened once per process (a forked worker opens its own); ``None`` where there is none."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._fd: int | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __call__(self) -> int | None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            try:
                self._fd = os.open("/proc/self/statm", os.O_RDONLY)
            except OSError:
                self._fd = None
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 64, 0).split()[1]) * self._page
        except (OSError, ValueError, IndexError):  # not what it was: opened again at the next reading
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._pid, self._fd = None, None
            return None


resident_memory = _ResidentMemory()


class _Budget:
    """Counts bytecode instructions executed in script frames (``f_trace_opcodes``):
    line events alone miss tight loops such as ``while True: pass``, which compile to a
    jump onto itself. Once exceeded it keeps raising, and since scripts cannot contain
    ``try`` the error always reaches the caller. Every ``MEMORY_CHECK_STEPS`` steps it
    reads the resident memory against ``memory_limit`` (none: not watched).

    The time a platform function takes is the platform's (a notice's file made durable,
    a row lock waited for): it moves the script's own deadline on, up to ``limit``, the
    deadline of the engine call's scripts together, which counts everything."""

    __slots__ = ("steps_left", "deadline", "max_steps", "max_seconds", "memory_limit", "limit", "total_seconds")

    def __init__(self, max_steps: int, max_seconds: float, memory_limit: int | None,
                 limit: float | None = None, total_seconds: float | None = None):
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.steps_left = max_steps
        self.memory_limit = memory_limit
        self.limit = limit if limit is not None else math.inf
        self.total_seconds = total_seconds
        self.deadline = min(time.monotonic() + max_seconds, self.limit)

    def platform(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` as the script calls it: its own time is not the script's. Only the
        platform's functions, and only under an engine call's deadline: code compiled from a
        diagram (a DMN input expression handed back as a callable) is the script's time."""
        code = getattr(function, "__code__", None)
        if self.limit == math.inf or (code is not None and code.co_filename == SCRIPT_FILENAME):
            return function

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                self.deadline = min(self.deadline + (time.monotonic() - started), self.limit)
        timed.__name__ = timed.__qualname__ = getattr(function, "__name__", "function")  # what an error names
        return timed

    def _out_of_time(self) -> ScriptBudgetExceeded:
        if self.deadline >= self.limit:
            return ScriptBudgetExceeded(f"scripts stopped: together they ran longer than {self.total_seconds} s")
        return ScriptBudgetExceeded(f"script stopped: ran longer than {self.max_seconds} s")

    def trace_call(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != SCRIPT_FILENAME:
            return None
        frame.f_trace_opcodes = True
        self.step()
        return self.trace_step

    def trace_step(self, frame: Any, event: str, arg: Any) -> Any:
        self.step()
        return self.trace_step

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise ScriptBudgetExceeded(f"script stopped: more than {self.max_steps} steps")
        # The clock is read every 64 steps: often enough that a loop calling slow platform
        # functions is stopped near the call's deadline, cheap enough for tight loops.
        if self.steps_left & 0x3F == 0 and time.monotonic() > self.deadline:
            raise self._out_of_time()
        if self.steps_left % MEMORY_CHECK_STEPS == 0 and self.memory_limit is not None \
                and (resident_memory() or 0) > self.memory_limit:
            raise ScriptBudgetExceeded(f"script stopped: it took more than {MAX_SCRIPT_MEMORY // 2**20} MB of memory")


class _DataCheck:
    """Task data must stay JSON-like, since it is stored as JSON: tuples become lists,
    anything else JSON cannot hold is refused, and so are cycles, deep nesting and data
    whose JSON would be huge (shared references count each time they are reached)."""

    def __init__(self, reserved_keys: frozenset[str] = frozenset()) -> None:
        self.values_left = MAX_DATA_VALUES
        self.chars_left = MAX_DATA_CHARS
        self.reserved_keys = reserved_keys
        self.open: set[int] = set()

    def convert(self, item: Any, name: str, depth: int = 0) -> Any:
        self.values_left -= 1
        if self.values_left < 0:
            raise ScriptError(f"task data too large (more than {MAX_DATA_VALUES} values)")
        if isinstance(item, str):
            self.chars_left -= len(item)
            if self.chars_left < 0:
                raise ScriptError(f"task data too large (more than {MAX_DATA_CHARS} characters of text)")
            return item
        if item is None or isinstance(item, (bool, int)):
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ScriptError(f"{name} holds a number that is not finite")
            return item
        if not isinstance(item, (list, tuple, dict)):
            raise ScriptError(f"{name} holds a {type(item).__name__}; task data must be JSON-like")
        if depth >= MAX_DATA_DEPTH:
            raise ScriptError(f"{name} is nested more than {MAX_DATA_DEPTH} levels deep")
        if id(item) in self.open:
            raise ScriptError(f"{name} contains itself")
        self.open.add(id(item))
        try:
            if isinstance(item, dict):
                converted = {}
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise ScriptError(f"{name} has a non-string key {key!r}")
                    if key in self.reserved_keys:
                        raise ScriptError(f"{name} uses the reserved key {key!r}")
                    converted[key] = self.convert(sub, name, depth + 1)
                same = type(item) is dict and all(converted[k] is v for k, v in item.items())
            else:
                converted = [self.convert(sub, name, depth + 1) for sub in item]
                same = type(item) is list and all(a is b for a, b in zip(converted, item))
            return item if same else converted
        finally:
            self.open.discard(id(item))


def check_task_data(data: Mapping[str, Any], reserved_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``data`` as task data: JSON-like (tuples become lists; containers that need no
    change are kept, not copied), or ``ScriptError`` saying which variable holds what
    cannot be stored. ``reserved_keys`` are dict keys the storage layer gives a meaning
    of its own."""
    check = _DataCheck(reserved_keys)
    return {name: check.convert(value, name) for name, value in data.items()}


def _check_function_name(name: str) -> None:
    if name.startswith("_") or name in DENIED_NAMES or name in SAFE_BUILTINS:
        raise ValueError(f"platform function name {name!r} is reserved")


class RestrictedEnvironment:
    """Runs compiled diagram code against task data under the guards and the budget.

    Has the interface of SpiffWorkflow's script environments (``evaluate`` and
    ``execute`` over a task-data ``context``, extra names in ``external_context``)
    without importing SpiffWorkflow. Platform functions (working-day calendar, clocks,
    notices, lookups) come either fixed, as ``functions``, or per call as callables in
    ``external_context``; they must return JSON-like values.

    A script runs in the task-data dict itself, as in SpiffWorkflow's own environment:
    a platform function that reads the task data while the script runs (a notice taking
    its particulars from variables the script has just set) sees them.
    """

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        *,
        reserved_keys: frozenset[str] = frozenset(),
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_total_seconds: float | None = None,
    ):
        """``max_total_seconds``: the time every run of this environment may take together
        (the engine makes one environment per engine call): a multi-instance task's copies
        each keep within ``max_seconds`` and still must not hold a request for minutes."""
        self.functions = dict(functions or {})
        for name in self.functions:
            _check_function_name(name)
        self.reserved_keys = reserved_keys
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.max_total_seconds = max_total_seconds
        self._total_deadline = time.monotonic() + max_total_seconds if max_total_seconds is not None else None
        #: an environment made for one engine call watches what all its runs build together
        self._memory_at_start = resident_memory() if max_total_seconds is not None else None

    def evaluate(self, expression: str, context: Mapping[str, Any], external_context: Mapping[str, Any] | None = None) -> Any:
        """Value of ``expression`` with the task data (and ``external_context``) as names."""
        code = compile_expression(expression)
        budget = self._budget()
        namespace = self._injected(context, external_context, budget)
        namespace.update((k, v) for k, v in context.items() if not k.startswith("_"))
        return self._run(code, namespace, budget)

    def execute(self, script: str, context: dict[str, Any], external_context: Mapping[str, Any] | None = None) -> bool:
        """Run ``script`` in ``context`` (the task data): its variables are the task's
        data afterwards; functions it defined are dropped, and what is left must be
        JSON-like (tuples become lists) without ``reserved_keys`` in its dicts."""
        code = compile_script(script)
        budget = self._budget()
        injected = self._injected(context, external_context, budget)
        hidden = {k: context.pop(k) for k in [k for k in context if k.startswith("_")]}
        context.update(injected)
        try:
            self._run(code, context, budget)
        finally:
            for name in injected:
                context.pop(name, None)
            for name in [k for k, v in context.items() if k.startswith("_") or callable(v)]:
                del context[name]
            context.update(hidden)
        check = _DataCheck(self.reserved_keys)
        for name in list(context):
            if name not in hidden:
                context[name] = check.convert(context[name], name)
        return True

    def _injected(self, context: Mapping[str, Any], external_context: Mapping[str, Any] | None,
                  budget: _Budget) -> dict[str, Any]:
        """Builtins, guards and functions for one run. Task data may not hide a function
        (SpiffWorkflow refuses the same); other external names give way to task data."""
        extra = {k: v for k, v in (external_context or {}).items() if not k.startswith("_")}
        for name, value in extra.items():
            if callable(value):
                _check_function_name(name)
        functions = set(self.functions) | {k for k, v in extra.items() if callable(v)}
        clashes = sorted(functions & set(context))
        if clashes:
            raise ScriptError("task data overwrites platform function(s) " + ", ".join(clashes) + "; rename the field(s)")
        injected: dict[str, Any] = {"__builtins__": SAFE_BUILTINS, **_GUARDS}
        injected.update((k, budget.platform(f)) for k, f in self.functions.items())
        injected.update((k, budget.platform(v) if callable(v) else v) for k, v in extra.items() if k not in context)
        return injected

    def _budget(self) -> _Budget:
        """One run's budget: its steps, its second, the call's deadline and memory."""
        start = self._memory_at_start if self._total_deadline is not None else resident_memory()
        budget = _Budget(self.max_steps, self.max_seconds, start + MAX_SCRIPT_MEMORY if start is not None else None,
                         self._total_deadline, self.max_total_seconds)
        if time.monotonic() > budget.limit:  # the call's earlier scripts used its time up
            raise budget._out_of_time()
        return budget

    def _run(self, code: CodeType, namespace: dict[str, Any], budget: _Budget) -> Any:
        previous = sys.gettrace()
        sys.settrace(budget.trace_call)
        try:
            return eval(code, namespace)  # noqa: S307 - RestrictedPython-compiled code only
        finally:
            sys.settrace(previous)
