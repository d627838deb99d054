"""Check parameters before any work starts, on the command line and in params.yaml.

Each parameter has one parsing function; the command line uses them as
argparse types, and ``validate_file`` applies the same ones to ``params.yaml``,
so a bad value is reported at once instead of after earlier stages ran.
"""

import argparse
import math


def integer(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    return parse


def optional_count(text):
    """A count >= 1, or 'all' for no limit: a run of nothing is a mistake."""
    if text in ("all", "none", "None"):
        return None
    return integer(1)(text)


def fraction(text):
    value = number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1)")
    return value


def number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text):
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be above 0")
    return value


def non_negative_float(text):
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def name_or_path(text):
    """A tokenizer name or path; it goes into shell commands, so plain only."""
    text = str(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if not all(c.isalnum() or c in "._-/~@+:" for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} may hold only letters, digits and . _ - / ~ @ + :"
        )
    return text


def choice(*allowed):
    def parse(text):
        if str(text) not in allowed:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of {', '.join(allowed)}"
            )
        return str(text)

    return parse


def listed(parse_one):
    """A comma-separated list (or a YAML list) of values of one kind."""

    def parse(text):
        text = str(text).strip("[]")
        items = [item.strip().strip("'\"") for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError("needs at least one value")
        return [parse_one(item) for item in items]

    return parse


def capacity(text):
    """A cache capacity in tokens, or 'unbounded' (a pool that never evicts)."""
    if str(text) in ("unbounded", "None", "none"):
        return None
    return integer(1)(text)


def trace_kind(text):
    return choice("multi_turn", "single_turn")(text)


# The sweep's own knobs, under ``sweep:`` in params.yaml.
SWEEP_PARAMS = {
    "conversations": optional_count,
    "traces": listed(trace_kind),
    "base_block_size": integer(1),
    "block_sizes": listed(integer(1)),
    "capacities": listed(capacity),
    "block_size_capacities": listed(capacity),
    "order": choice("trace", "arrival"),
}

# Every key of params.yaml and how it is checked.
PARAMS = {
    "conversations": optional_count,
    "line_separators": choice("drop", "keep"),
    "arrival_rate": positive_float,
    "seed": integer(0),
    "turn_delay": non_negative_float,
    "tokenizer": name_or_path,
    "requests": optional_count,
    "block_size": integer(1),
    "gpu_blocks": integer(1),
    "cpu_blocks": integer(0),
    "watermark": fraction,
}


# Keys whose value is a list; every other value is a single one.
LIST_KEYS = ("traces", "block_sizes", "capacities", "block_size_capacities")


def validate(values, source="params.yaml", complete=False):
    """Parsed values of a params mapping; UserError names the first bad one.

    ``complete`` also requires every key (the pipeline reads them all).
    """
    from prefix_sharing.errors import UserError

    if complete:
        missing = [key for key in [*PARAMS, "sweep"] if key not in values]
        missing += [f"sweep.{key}" for key in SWEEP_PARAMS
                    if isinstance(values.get("sweep"), dict)
                    and key not in values["sweep"]]
        if missing:
            raise UserError(f"{source}: {missing[0]} is missing")
    parsed = _validate(values, PARAMS, source, "", nested=("sweep",))
    if "sweep" in values:
        sweep = values["sweep"]
        if not isinstance(sweep, dict):
            raise UserError(f"{source}: sweep: expected a mapping")
        parsed["sweep"] = _validate(sweep, SWEEP_PARAMS, source, "sweep.")
    return parsed


def _validate(values, schema, source, prefix, nested=()):
    from prefix_sharing.errors import UserError

    unknown = sorted(set(values) - set(schema) - set(nested))
    if unknown:
        raise UserError(f"{source}: unknown parameter {prefix}{unknown[0]}")
    parsed = {}
    for key, parse in schema.items():
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, (list, dict)) and key not in LIST_KEYS:
            raise UserError(f"{source}: {prefix}{key}: expected a single value")
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            parsed[key] = parse(text)
        except argparse.ArgumentTypeError as error:
            raise UserError(f"{source}: {prefix}{key}: {error}") from None
    return parsed


def validate_file(path):
    import yaml

    from prefix_sharing.errors import UserError

    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{path}: cannot be read as YAML ({error})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of parameter names to values")
    return validate(values, str(path), complete=True)
